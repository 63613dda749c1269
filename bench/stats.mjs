// The percentile rule every figure of the benchmark uses, in the orchestrator and its children alike.

/** The p-th percentile of an ascending array (or typed array): the value at floor(p% of n); null when empty. */
export const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
