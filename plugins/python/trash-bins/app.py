"""The trash-bins plugin component: operations over logic.py and the host's state."""

from typing import Any, Dict

import logic
from courtyard_sdk import Conflict, Context, InvalidInput, NotFound, Plugin, config, events, operation, state


def _refused(e: logic.Refused) -> Exception:
    return {"invalid-input": InvalidInput, "not-found": NotFound}.get(e.kind, Conflict)(str(e))


def _load(bin_id: str) -> Dict[str, Any]:
    record = state.get(f"bin/{bin_id}")
    if record is None:
        raise NotFound(f"no bin {bin_id!r} is registered in this community; register it with register-bin")
    return record


def _replayed(ctx: Context) -> Any:
    return None if ctx.idempotency_key is None else state.get(f"idem/{ctx.idempotency_key}")


def _remember(ctx: Context, output: Any) -> Any:
    if ctx.idempotency_key is not None:
        state.put(f"idem/{ctx.idempotency_key}", output)
    return output


class TrashBins(Plugin):
    def _change(self, ctx: Context, bin_id: str, change) -> Dict[str, Any]:
        previous = _replayed(ctx)
        if previous is not None:
            return previous
        cfg = config()
        record, emitted = change(_load(bin_id), cfg)
        state.put(f"bin/{bin_id}", record)
        for kind, payload in emitted:
            events.emit(kind, payload)
        return _remember(ctx, logic.status(record, ctx.now_ms, cfg))

    @operation("register-bin")
    def register_bin(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        try:
            record = logic.register(state.get(f"bin/{input['bin']}"), input["bin"], input["location"], input["stream"], ctx.now_ms)
        except logic.Refused as e:
            raise _refused(e)
        state.put(f"bin/{input['bin']}", record)
        return logic.status(record, ctx.now_ms, config())

    @operation("report")
    def report(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        return self._change(ctx, input["bin"], lambda b, cfg: logic.report(b, input["fill_percent"], input["lid"], ctx.now_ms, cfg))

    @operation("emptied")
    def emptied(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        return self._change(ctx, input["bin"], lambda b, cfg: logic.emptied(b, input["by"], ctx.now_ms))

    @operation("disinfected")
    def disinfected(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        return self._change(ctx, input["bin"], lambda b, cfg: logic.disinfected(b, input["by"], ctx.now_ms))

    @operation("status")
    def status(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        return logic.status(_load(input["bin"]), ctx.now_ms, config())

    @operation("due")
    def due(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        cfg = config()
        statuses = []
        after = None
        while True:
            page = state.list("bin/", after, 500)
            statuses.extend(logic.status(record, ctx.now_ms, cfg) for _, record in page)
            if len(page) < 500:
                break
            after = page[-1][0]
        return logic.due(statuses, cfg)


Handler = TrashBins.handler()
