"""Customer requests under the agreement (#28): what a customer asked through the provider's ticket system, read
back so its response and resolution clocks can be measured (monitor.sla.business). One module per source system
(``rt``: Request Tracker 5 over REST 2), each turning the system's history into a :class:`RequestTimeline`."""

from monitor.tickets.requests.base import RequestTimeline, timeline

__all__ = ["RequestTimeline", "timeline"]
