"""The demo's summary table: the second act's counts, side by side, promises marked."""

from __future__ import annotations

from ._demo_chaos import CLOSE_TIMEOUT, STUCK, ActTwo
from ._demo_plan import Tally
from ._demo_view import Row


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"


def _failed(t: Tally) -> str:
    return str(sum(t.failed.values()))


def summary_rows(act: ActTwo) -> list[Row]:
    """The rows, in the order a reader asks the questions."""
    p, n = act.pooled, act.naive
    kept = {key: ok for key, (_, ok) in act.promises().items()}
    return [
        Row("requests (concurrent tasks)", f"{p.total} ({act.plan.concurrency})", f"{n.total}"),
        Row("got a reply (right or wrong)", str(p.completed), str(n.completed)),
        Row(
            "answered, by the server's count",
            str(act.answered.get("pooled")),
            str(act.answered.get("naive")),
        ),
        Row(
            "cancelled / timed out, as planned",
            f"{p.cancelled} / {p.timed_out}",
            f"{n.cancelled} / {n.timed_out}",
        ),
        Row("failed (reset by the network)", _failed(p), _failed(n)),
        Row("ended any other way", str(p.unexpected), str(n.unexpected), kept["accounted"]),
        Row(
            "replies from another request", str(p.mismatched), str(n.mismatched), kept["crosstalk"]
        ),
        Row(
            "reused after a cut-off or failure",
            str(p.dead_reused),
            str(n.dead_reused),
            kept["reuse"],
        ),
        Row("waiters overtaken (FIFO)", str(p.overtakes), str(n.overtakes), kept["fifo"]),
        Row("worst wait for a connection", f"{act.wait_max:.3f} s", f"{n.worst_wait:.3f} s"),
        Row(
            "mid-request: cut off / failed",
            f"{p.cut_inside} / {p.failed_inside}",
            f"{n.cut_inside} / {n.failed_inside}",
        ),
        Row(
            "discarded, by reason", _reasons(act.discarded), "never (cannot tell)", kept["discards"]
        ),
        Row(
            f"close() with {STUCK} stuck, bound {CLOSE_TIMEOUT} s",
            f"{act.close_seconds:.2f} s, {_reasons(act.close_discarded)}",
            "n/a",
            kept["close"],
        ),
        Row(
            "stranded when the storm ended",
            str(act.stranded.get("pooled")),
            str(act.stranded.get("naive")),
            kept["leaks"],
        ),
        Row(
            "open on the server after close",
            str(act.server_open_after.get("pooled")),
            str(act.server_open_after.get("naive")),
            kept["leaks"],
        ),
        Row("storm time", f"{p.seconds:.1f} s", f"{n.seconds:.1f} s"),
    ]
