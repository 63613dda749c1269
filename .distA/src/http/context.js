/** Milliseconds since the request arrived, to 0.01 ms. */
export function elapsedMs(ctx) {
    return Math.round(Number(process.hrtime.bigint() - ctx.t0) / 1e4) / 100;
}
const REQUEST_ID = Symbol('keyward.requestId');
/**
 * Remembers the request id on the response, for answers Keyward writes itself (errors). Not set as
 * a header up front: a header set before writeHead() sends every later header down Node's slow path.
 */
export function tagResponse(res, id) {
    res[REQUEST_ID] = id;
}
export function requestIdOf(res) {
    return res[REQUEST_ID];
}
//# sourceMappingURL=context.js.map