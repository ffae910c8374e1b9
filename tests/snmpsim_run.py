"""Start snmpsim's command responder with what it imports lazily already imported.

As root, snmpsim drops to an unprivileged user before it builds its indexes; if the
interpreter's standard library is not readable by that user (a pyenv Python under
/root), those later imports fail. Importing them first avoids that."""

import dbm  # noqa: F401 - imported for their side effect: loaded before privileges drop
import dbm.dumb  # noqa: F401
import encodings.ascii  # noqa: F401
import encodings.latin_1  # noqa: F401
import encodings.utf_8  # noqa: F401
import sys

for name in ("dbm.gnu", "dbm.ndbm"):
    try:
        __import__(name)
    except ImportError:
        pass

from snmpsim.commands.responder import main  # noqa: E402

sys.exit(main())
