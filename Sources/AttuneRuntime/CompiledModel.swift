import AttuneCodegen
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A compiled model loaded with dlopen: a KV-cache session over the generated entry points.
public final class CompiledModel {
    private typealias Open = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>, Int) -> OpaquePointer?
    private typealias Close = @convention(c) (OpaquePointer?) -> Void
    private typealias Prefill = @convention(c) (OpaquePointer?, UnsafePointer<Int32>, Int64, UnsafeMutablePointer<Float>?) -> Int32
    private typealias Decode = @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<Float>?) -> Int32
    private typealias Reset = @convention(c) (OpaquePointer?) -> Void
    private typealias Length = @convention(c) (OpaquePointer?) -> Int64
    private typealias Count = @convention(c) () -> Int64
    private typealias ErrorText = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>
    private typealias Fork = @convention(c) (OpaquePointer?, Int64) -> Int32
    private typealias Truncate = @convention(c) (OpaquePointer?, Int64) -> Int32
    private typealias PrefillSeq = @convention(c) (OpaquePointer?, Int64, UnsafePointer<Int32>, Int64, UnsafeMutablePointer<Float>?) -> Int32
    private typealias DecodeBatch = @convention(c) (OpaquePointer?, UnsafePointer<Int32>, UnsafeMutablePointer<Float>?) -> Int32
    private typealias CounterName = @convention(c) (Int64) -> UnsafePointer<CChar>?
    private typealias BatchRefusal = @convention(c) () -> UnsafePointer<CChar>?
    private typealias CounterValue = @convention(c) (OpaquePointer?, Int64) -> Int64
    private typealias MaskTiles = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int64>?, UnsafeMutablePointer<Int64>?, UnsafeMutablePointer<Int64>?) -> Void
    private typealias PrefillPacked = @convention(c) (OpaquePointer?, UnsafePointer<Int32>, UnsafePointer<Int64>, Int64, UnsafeMutablePointer<Float>?) -> Int32

    private let handle: UnsafeMutableRawPointer
    private let model: OpaquePointer
    private let close: Close
    private let prefillFn: Prefill
    private let prefillLastFn: Prefill
    private let decodeFn: Decode
    private let resetFn: Reset
    private let lengthFn: Length
    private let errorFn: ErrorText
    private let counterValue: CounterValue
    private let forkFn: Fork
    private let truncateFn: Truncate
    private let prefillSeqFn: PrefillSeq
    private let decodeBatchFn: DecodeBatch
    private let sequencesFn: Length
    private let prefillPackedFn: PrefillPacked
    private let prefillPackedLastFn: PrefillPacked
    private let maskTilesFn: MaskTiles
    /// Names of the kernels' counters, e.g. `layer0.unified_max.fallback_rows`.
    public let counterNames: [String]
    /// Why the model cannot run batched sequences (`fork`), or nil.
    public let batchRefusal: String?
    /// Why the model cannot run packed documents (`prefillPacked`), or nil.
    public let packedRefusal: String?
    public let vocab: Int
    public let maxContext: Int

    public init(library: URL, manifest: URL) throws {
        guard let h = dlopen(library.path, RTLD_NOW | RTLD_LOCAL) else {
            throw RuntimeError("cannot load \(library.path): \(String(cString: dlerror()))")
        }
        handle = h
        func symbol<T>(_ name: String, _: T.Type) throws -> T {
            guard let s = dlsym(h, name) else { throw RuntimeError("\(library.path) has no symbol \(name)") }
            return unsafeBitCast(s, to: T.self)
        }
        do {
            let open = try symbol("attune_model_open", Open.self)
            close = try symbol("attune_model_close", Close.self)
            prefillFn = try symbol("attune_model_prefill", Prefill.self)
            prefillLastFn = try symbol("attune_model_prefill_last", Prefill.self)
            decodeFn = try symbol("attune_model_decode_step", Decode.self)
            resetFn = try symbol("attune_model_reset", Reset.self)
            lengthFn = try symbol("attune_model_length", Length.self)
            errorFn = try symbol("attune_model_error", ErrorText.self)
            vocab = Int(try symbol("attune_model_vocab", Count.self)())
            maxContext = Int(try symbol("attune_model_max_context", Count.self)())
            counterValue = try symbol("attune_model_counter_value", CounterValue.self)
            forkFn = try symbol("attune_model_fork", Fork.self)
            truncateFn = try symbol("attune_model_truncate", Truncate.self)
            prefillSeqFn = try symbol("attune_model_prefill_seq", PrefillSeq.self)
            decodeBatchFn = try symbol("attune_model_decode_batch", DecodeBatch.self)
            sequencesFn = try symbol("attune_model_sequences", Length.self)
            batchRefusal = try symbol("attune_model_batch_refusal", BatchRefusal.self)().map { String(cString: $0) }
            prefillPackedFn = try symbol("attune_model_prefill_packed", PrefillPacked.self)
            prefillPackedLastFn = try symbol("attune_model_prefill_packed_last", PrefillPacked.self)
            packedRefusal = try symbol("attune_model_packed_refusal", BatchRefusal.self)().map { String(cString: $0) }
            maskTilesFn = try symbol("attune_model_mask_tiles", MaskTiles.self)
            let counterName = try symbol("attune_model_counter_name", CounterName.self)
            let counterCount = try symbol("attune_model_counter_count", Count.self)()
            counterNames = (0..<counterCount).map { String(cString: counterName($0)!) }
            var message = [CChar](repeating: 0, count: 512)
            guard let m = open(manifest.path, &message, message.count) else {
                throw RuntimeError(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            model = m
        } catch {
            dlclose(h)
            throw error
        }
    }

    /// Builds `module` (or takes it from the cache), writes its weights manifest into the
    /// cache and loads it.
    public convenience init(module: EmittedModule, toolchain: Toolchain, allowNonfinite: Bool = false) throws {
        let built = try toolchain.build(module)
        let manifest = try WeightsManifest.cached(module, cacheDirectory: toolchain.cacheDirectory, allowNonfinite: allowNonfinite)
        try self.init(library: built.library, manifest: manifest)
    }

    /// Loads what `ModelCompiler.compile` built.
    public convenience init(artifacts: CompiledArtifacts) throws {
        try self.init(library: artifacts.library, manifest: artifacts.manifest)
    }

    deinit {
        close(model)
        dlclose(handle)
    }

    /// Cached positions.
    public var length: Int { Int(lengthFn(model)) }

    /// Runs `tokens` after the cached ones; returns their logits, [tokens.count * vocab].
    public func prefill(_ tokens: [Int32]) throws -> [Float] {
        var logits = [Float](repeating: 0, count: tokens.count * vocab)
        let rc = tokens.withUnsafeBufferPointer { t in
            logits.withUnsafeMutableBufferPointer { l in prefillFn(model, t.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(tokens.count), l.baseAddress) }
        }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return logits
    }

    /// Runs `tokens` (at least one) after the cached ones; returns the last one's logits
    /// only, [vocab]: the vocabulary projection runs for that row alone.
    public func prefillLast(_ tokens: [Int32]) throws -> [Float] {
        var logits = [Float](repeating: 0, count: vocab)
        let rc = tokens.withUnsafeBufferPointer { t in
            logits.withUnsafeMutableBufferPointer { l in prefillLastFn(model, t.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(tokens.count), l.baseAddress) }
        }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return logits
    }

    /// One token after the cached ones; returns its logits.
    public func decodeStep(_ token: Int32) throws -> [Float] {
        var logits = [Float](repeating: 0, count: vocab)
        let rc = logits.withUnsafeMutableBufferPointer { decodeFn(model, token, $0.baseAddress) }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return logits
    }

    /// Documents of `lengths` tokens, concatenated in `tokens`, in one prefill on an empty
    /// cache (`attune_model_prefill_packed`): each sees only itself, at positions from 0.
    /// Returns every token's logits, [tokens.count * vocab]. Until `reset`, the cache takes
    /// no other prefill or decode step.
    public func prefillPacked(_ tokens: [Int32], lengths: [Int]) throws -> [Float] {
        try packed(prefillPackedFn, tokens, lengths, rows: tokens.count)
    }

    /// Like `prefillPacked`, but only each document's last token's logits, one row per document.
    public func prefillPackedLast(_ tokens: [Int32], lengths: [Int]) throws -> [[Float]] {
        let logits = try packed(prefillPackedLastFn, tokens, lengths, rows: lengths.count)
        return (0..<lengths.count).map { Array(logits[$0 * vocab..<($0 + 1) * vocab]) }
    }

    private func packed(_ fn: PrefillPacked, _ tokens: [Int32], _ lengths: [Int], rows: Int) throws -> [Float] {
        let total = lengths.reduce(0, +)
        guard total == tokens.count else { throw RuntimeError("document lengths sum to \(total), but there are \(tokens.count) tokens") }
        var logits = [Float](repeating: 0, count: rows * vocab)
        let sizes = lengths.map(Int64.init)
        let rc = tokens.withUnsafeBufferPointer { t in
            sizes.withUnsafeBufferPointer { n in
                logits.withUnsafeMutableBufferPointer { l in
                    fn(model, t.baseAddress ?? UnsafePointer(bitPattern: 4)!, n.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(sizes.count), l.baseAddress)
                }
            }
        }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return logits
    }

    /// Turns the cached tokens into the shared prefix of `n` sequences (`attune_model_fork`).
    public func fork(_ n: Int) throws {
        if forkFn(model, Int64(n)) != 0 { throw RuntimeError(String(cString: errorFn(model))) }
    }

    /// Forked sequences; 0 before `fork`.
    public var sequences: Int { Int(sequencesFn(model)) }

    /// Runs `tokens` for forked sequence `s`; returns their logits.
    public func prefill(sequence s: Int, _ tokens: [Int32]) throws -> [Float] {
        var logits = [Float](repeating: 0, count: tokens.count * vocab)
        let rc = tokens.withUnsafeBufferPointer { t in
            logits.withUnsafeMutableBufferPointer { l in
                prefillSeqFn(model, Int64(s), t.baseAddress ?? UnsafePointer(bitPattern: 8)!, Int64(tokens.count), l.baseAddress)
            }
        }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return logits
    }

    /// One token per forked sequence in one forward pass; returns each sequence's logits.
    public func decodeBatch(_ tokens: [Int32]) throws -> [[Float]] {
        guard tokens.count == sequences else {
            throw RuntimeError("decode_batch needs one token per sequence: \(sequences), got \(tokens.count)")
        }
        var logits = [Float](repeating: 0, count: tokens.count * vocab)
        let rc = tokens.withUnsafeBufferPointer { t in
            logits.withUnsafeMutableBufferPointer { l in decodeBatchFn(model, t.baseAddress!, l.baseAddress) }
        }
        if rc != 0 { throw RuntimeError(String(cString: errorFn(model))) }
        return (0..<tokens.count).map { Array(logits[$0 * vocab..<($0 + 1) * vocab]) }
    }

    /// Keeps the first `n` cached positions (a chat turn reuses what its re-rendered
    /// conversation shares with the cache). Throws for forked models and for models whose
    /// kernels keep their own K/V store; `reset` and prefill again there.
    public func truncate(to n: Int) throws {
        if truncateFn(model, Int64(n)) != 0 { throw RuntimeError(String(cString: errorFn(model))) }
    }

    /// Forgets the KV cache and zeroes the counters.
    public func reset() { resetFn(model) }

    /// What the document masks saved since open or the last reset (packed prefills), summed
    /// over layers and heads: KV tiles computed, tiles hidden by the documents and never
    /// computed, computed tiles that needed the per-element mask.
    public var maskTiles: (computed: Int64, skipped: Int64, partial: Int64) {
        var c: Int64 = 0, s: Int64 = 0, p: Int64 = 0
        maskTilesFn(model, &c, &s, &p)
        return (c, s, p)
    }

    /// The kernels' counters summed since open or the last reset, by name.
    public var counters: [(name: String, value: Int64)] {
        counterNames.enumerated().map { ($0.element, counterValue(model, Int64($0.offset))) }
    }
}
