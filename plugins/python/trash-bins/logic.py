"""Smart trash bins: the domain logic, pure functions over plain dicts.

No host imports here, so `python3 -m unittest` runs it natively (see test_logic.py).
A bin record:

    {"bin": "b-12", "location": "Building 3 east door", "stream": "kitchen",
     "fill_percent": 40, "lid": "closed", "lid_opened_at_ms": None,
     "lid_alerted": False, "last_report_ms": ..., "last_emptied_ms": ...,
     "last_disinfected_ms": ...}
"""

from typing import Any, Dict, List, Optional, Tuple

STREAMS = ("kitchen", "recyclable", "hazardous", "other")
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

Record = Dict[str, Any]
Event = Tuple[str, Dict[str, Any]]


class Refused(Exception):
    """A refusal: `kind` is "invalid-input", "not-found" or "conflict"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def register(existing: Optional[Record], bin_id: str, location: str, stream: str, now_ms: int) -> Record:
    """A new bin, or an existing one moved or re-labelled (its readings are kept)."""
    if stream not in STREAMS:
        raise Refused("invalid-input", f"stream must be one of {', '.join(STREAMS)}, not {stream!r}")
    if existing is not None:
        return dict(existing, location=location, stream=stream)
    return {
        "bin": bin_id,
        "location": location,
        "stream": stream,
        "fill_percent": 0,
        "lid": "closed",
        "lid_opened_at_ms": None,
        "lid_alerted": False,
        "last_report_ms": None,
        "last_emptied_ms": None,
        "last_disinfected_ms": now_ms,
    }


def report(bin: Record, fill_percent: int, lid: str, now_ms: int, config: Dict[str, Any]) -> Tuple[Record, List[Event]]:
    """A reading from the bin's sensors: fill level and lid position."""
    events: List[Event] = []
    full_at = config["full_at_percent"]
    was_full = bin["fill_percent"] >= full_at
    updated = dict(bin, fill_percent=fill_percent, lid=lid, last_report_ms=now_ms)
    if fill_percent >= full_at and not was_full:
        events.append(("trash-bins.full", {"bin": bin["bin"], "location": bin["location"], "fill_percent": fill_percent}))
    if lid == "open":
        opened = bin["lid_opened_at_ms"] if bin["lid"] == "open" and bin["lid_opened_at_ms"] is not None else now_ms
        updated["lid_opened_at_ms"] = opened
        alerted = bin["lid_alerted"] if bin["lid"] == "open" else False
        open_minutes = (now_ms - opened) // MINUTE_MS
        if not alerted and open_minutes >= config["lid_open_alert_minutes"]:
            events.append(("trash-bins.lid-left-open", {"bin": bin["bin"], "location": bin["location"], "open_minutes": open_minutes}))
            alerted = True
        updated["lid_alerted"] = alerted
    else:
        updated["lid_opened_at_ms"] = None
        updated["lid_alerted"] = False
    return updated, events


def emptied(bin: Record, by: str, now_ms: int) -> Tuple[Record, List[Event]]:
    """Staff emptied the bin."""
    updated = dict(bin, fill_percent=0, last_emptied_ms=now_ms)
    return updated, [("trash-bins.emptied", {"bin": bin["bin"], "by": by})]


def disinfected(bin: Record, by: str, now_ms: int) -> Tuple[Record, List[Event]]:
    """Staff (or the bin's own sprayer) disinfected the bin."""
    updated = dict(bin, last_disinfected_ms=now_ms)
    return updated, [("trash-bins.disinfected", {"bin": bin["bin"], "by": by})]


def status(bin: Record, now_ms: int, config: Dict[str, Any]) -> Dict[str, Any]:
    """The bin as operations return it, with what is due."""
    interval = config["disinfect_every_hours"] * HOUR_MS
    due_at = bin["last_disinfected_ms"] + interval
    lid_open_minutes = None
    if bin["lid"] == "open" and bin["lid_opened_at_ms"] is not None:
        lid_open_minutes = (now_ms - bin["lid_opened_at_ms"]) // MINUTE_MS
    return {
        "bin": bin["bin"],
        "location": bin["location"],
        "stream": bin["stream"],
        "fill_percent": bin["fill_percent"],
        "lid": bin["lid"],
        "lid_open_minutes": lid_open_minutes,
        "needs_emptying": bin["fill_percent"] >= config["full_at_percent"],
        "disinfection_due": now_ms >= due_at,
        "disinfection_due_at_ms": due_at,
    }


def due(statuses: List[Dict[str, Any]], config: Dict[str, Any]) -> Dict[str, List[str]]:
    """What staff should do now: bins to empty, to disinfect, lids left open."""
    return {
        "empty": [s["bin"] for s in statuses if s["needs_emptying"]],
        "disinfect": [s["bin"] for s in statuses if s["disinfection_due"]],
        "lid_open": [
            s["bin"]
            for s in statuses
            if s["lid_open_minutes"] is not None and s["lid_open_minutes"] >= config["lid_open_alert_minutes"]
        ],
    }
