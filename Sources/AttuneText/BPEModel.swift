import Foundation

/// tokenizer.json's "model" of type BPE: a vocabulary and ranked merges, with the options
/// the Llama 2 and byte-level families use (byte_fallback, fuse_unk, unk_token, ignore_merges).
struct BPEModel {
    /// Token → id, keyed by Unicode scalar values so canonically equivalent tokens stay apart.
    let vocab: [[UInt32]: Int32]
    /// Single-scalar tokens: the starting symbols of every word.
    private let singles: [UInt32: Int32]
    /// (left id, right id) → rank and merged id.
    private let merges: [UInt64: Merge]
    /// id of `<0xNN>` per byte, -1 where absent (byte_fallback).
    private let byteTokens: [Int32]
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool

    struct Merge { var rank: Int32; var id: Int32 }

    /// Id → token for the model vocabulary.
    let tokens: [Int32: String]

    init(_ f: JSONFields) throws {
        let type = try f.type()
        guard type == "BPE" else { throw TextError("tokenizer.json: model type '\(type)' is not supported") }
        if let d = f.object["dropout"] as? Double, d > 0 {
            throw TextError("tokenizer.json: BPE dropout \(d) is not supported (encoding would be random)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = try f.optionalString(key), !s.isEmpty {
                throw TextError("tokenizer.json: BPE \(key) '\(s)' is not supported")
            }
        }
        guard let rawVocab = f.object["vocab"] as? [String: Any] else { throw TextError("\(f.path).vocab must be an object") }
        var vocab: [[UInt32]: Int32] = [:]
        var singles: [UInt32: Int32] = [:]
        var tokens: [Int32: String] = [:]
        vocab.reserveCapacity(rawVocab.count)
        for (token, value) in rawVocab {
            guard let n = value as? NSNumber, let id = Int32(exactly: n.doubleValue), id >= 0 else {
                throw TextError("\(f.path).vocab['\(token)'] must be a non-negative integer id")
            }
            let key = token.unicodeScalars.map(\.value)
            vocab[key] = id
            if key.count == 1 { singles[key[0]] = id }
            tokens[id] = token
        }
        var merges: [UInt64: Merge] = [:]
        let rawMerges = try f.array("merges")
        merges.reserveCapacity(rawMerges.count)
        for (rank, item) in rawMerges.enumerated() {
            let pair: [String]
            if let s = item as? String {
                pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = (item as? [Any])?.compactMap { $0 as? String } ?? []
            }
            guard pair.count == 2 else { throw TextError("\(f.path).merges[\(rank)] is not a pair of tokens") }
            let a = pair[0].unicodeScalars.map(\.value), b = pair[1].unicodeScalars.map(\.value)
            guard let left = vocab[a], let right = vocab[b], let merged = vocab[a + b] else {
                throw TextError("tokenizer.json: merge '\(pair[0]) \(pair[1])' uses a token missing from the vocabulary")
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            merges[key] = Merge(rank: Int32(rank), id: merged)  // a repeated pair takes its last rank, as in tokenizers
        }
        var byteTokens = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name = "<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
            if let id = vocab[name.unicodeScalars.map(\.value)] { byteTokens[b] = id }
        }
        var unkId: Int32?
        if let unk = try f.optionalString("unk_token") {
            guard let id = vocab[unk.unicodeScalars.map(\.value)] else {
                throw TextError("tokenizer.json: unk_token '\(unk)' is not in the vocabulary")
            }
            unkId = id
        }
        self.vocab = vocab
        self.singles = singles
        self.merges = merges
        self.byteTokens = byteTokens
        self.tokens = tokens
        self.unkId = unkId
        self.fuseUnk = try f.bool("fuse_unk", default: false)
        self.byteFallback = try f.bool("byte_fallback", default: false)
        self.ignoreMerges = try f.bool("ignore_merges", default: false)
    }

    /// Appends the ids of one pre-tokenized word. `cache` maps words already seen in this
    /// call to their ids (the result depends on the word alone).
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int32], cache: inout [[UInt32]: [Int32]]) {
        if word.isEmpty { return }
        let key = word.map(\.value)
        if ignoreMerges, let id = vocab[key] {
            out.append(id)
            return
        }
        if let hit = cache[key] {
            out += hit
            return
        }
        let ids = merge(key)
        if key.count < 256, cache.count < 50_000 { cache[key] = ids }
        out += ids
    }

    /// tokenizers' merge_word + Word::merge_all: symbols from characters (or their bytes,
    /// or unk), then merges applied lowest rank first, leftmost first among equal ranks.
    private func merge(_ word: [UInt32]) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        var pendingUnk = false  // an unk symbol waiting in case the next character fuses with it
        for s in word {
            if let id = singles[s] {
                if pendingUnk, let unk = unkId { ids.append(unk); pendingUnk = false }
                ids.append(id)
                continue
            }
            if byteFallback, let bytes = UTF8.encode(Unicode.Scalar(s)!),
               bytes.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                // HF adds byte symbols without flushing a pending unk first; it lands after them.
                for b in bytes { ids.append(byteTokens[Int(b)]) }
                continue
            }
            guard let unk = unkId else { continue }
            if pendingUnk && !fuseUnk { ids.append(unk) }
            pendingUnk = true
        }
        if pendingUnk, let unk = unkId { ids.append(unk) }
        return ids.count < 2 ? ids : applyMerges(ids)
    }

    private func applyMerges(_ start: [Int32]) -> [Int32] {
        var ids = start
        let n = ids.count
        var next = Array(1...n).map { $0 == n ? -1 : $0 }
        var prev = (0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        func pair(_ a: Int32, _ b: Int32) -> Merge? { merges[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] }
        for i in 0..<(n - 1) {
            if let m = pair(ids[i], ids[i + 1]) { heap.push(.init(rank: m.rank, pos: Int32(i), id: m.id)) }
        }
        while let top = heap.pop() {
            let pos = Int(top.pos)
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = next[pos]
            guard let m = pair(ids[pos], ids[right]), m.id == top.id else { continue }
            ids[pos] = m.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[next[right]] = pos }
            if prev[pos] >= 0, let m = pair(ids[prev[pos]], ids[pos]) {
                heap.push(.init(rank: m.rank, pos: Int32(prev[pos]), id: m.id))
            }
            if next[pos] >= 0, let m = pair(ids[pos], ids[next[pos]]) {
                heap.push(.init(rank: m.rank, pos: Int32(pos), id: m.id))
            }
        }
        var out: [Int32] = []
        var i = 0
        while i >= 0 {
            out.append(ids[i])
            i = next[i]
        }
        return out
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
private struct MergeHeap {
    struct Entry { var rank: Int32; var pos: Int32; var id: Int32 }
    private var items: [Entry] = []

    private static func less(_ a: Entry, _ b: Entry) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, Self.less(items[l], items[m]) { m = l }
            if r < items.count, Self.less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
