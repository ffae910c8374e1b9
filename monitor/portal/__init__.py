"""The customer portal (#29): a read-only, server-rendered web view of each contract on the daemon's store
(``slawatch portal``), with logins per contract, API tokens for its JSON views, and no way to read another
contract's data."""
