/// A kernel that keeps a layer's K/V in a store of its own instead of the module's dense
/// KV cache — `hybrid`'s hot and cold tiers. A compiled module creates one store per
/// layer at open (`m->store[i]`, a `void *`), resets it with the sequence, destroys it
/// at close, and in each forward pass hands the attention node the chunk's new K/V rows
/// to append before attending over everything stored.
public protocol KVStoreKernel: AttentionKernel {
    /// C statements creating the store into `void *store`, given `attune_status status`;
    /// they leave the return code in `int rc`.
    func cStoreCreate(_ parameters: KernelParameters, _ layout: KVStoreLayout) throws -> [String]
    /// C statements appending the chunk's K/V rows to `store` and attending over it, given
    /// `attune_status status` and, when `cCounters` is not empty, `int64_t *counters`;
    /// they leave the return code in `int rc`.
    func cStoreAttention(_ parameters: KernelParameters, _ call: KVStoreCall) throws -> [String]
    /// C functions taking the store: empty it (a new sequence), free it.
    var cStoreReset: String { get }
    var cStoreDestroy: String { get }
}

/// What one layer's store holds.
public struct KVStoreLayout: Sendable {
    public var layer: Int
    public var kvHeads: Int, qkDim: Int, vDim: Int
    /// Positions the module can hold (its compiled context).
    public var maxTokens: Int
    /// The compile's `--kv` format: a store keeping K/V in a KV-cache format (hybrid's hot
    /// tier) uses it.
    public var kvFormat: KVFormat

    public init(layer: Int, kvHeads: Int, qkDim: Int, vDim: Int, maxTokens: Int, kvFormat: KVFormat = .f32) {
        self.layer = layer; self.kvHeads = kvHeads; self.qkDim = qkDim; self.vDim = vDim; self.maxTokens = maxTokens
        self.kvFormat = kvFormat
    }
}

/// One attention call over a store, as C expressions: `rows` new query rows (and as many
/// new K/V rows); every row of a tensor is `width` floats of heads side by side at
/// `pointer + r * rowStride`.
public struct KVStoreCall: Sendable {
    public struct Rows: Sendable {
        public var pointer: String, rowStride: Int
        public init(pointer: String, rowStride: Int) { self.pointer = pointer; self.rowStride = rowStride }
    }
    public var store: String
    public var rows: String
    public var heads: Int, kvHeads: Int, qkDim: Int, vDim: Int
    public var scale: Double
    public var causal: Bool
    public var q: Rows, k: Rows, v: Rows, o: Rows

    public init(store: String, rows: String, heads: Int, kvHeads: Int, qkDim: Int, vDim: Int, scale: Double, causal: Bool,
                q: Rows, k: Rows, v: Rows, o: Rows) {
        self.store = store; self.rows = rows; self.heads = heads; self.kvHeads = kvHeads; self.qkDim = qkDim; self.vDim = vDim
        self.scale = scale; self.causal = causal; self.q = q; self.k = k; self.v = v; self.o = o
    }
}
