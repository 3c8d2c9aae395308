/// A stretch of normalized text on its way to the model.
struct Piece {
    var text: [Unicode.Scalar]
    /// True if the piece starts at offset 0 of the input (Metaspace's prepend_scheme "first").
    var atStart: Bool
}

/// tokenizer.json's "pre_tokenizer": splits text into the words the model sees.
indirect enum PreTokenizer {
    case sequence([PreTokenizer])
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitMatcher, SplitBehavior, invert: Bool)
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)

    enum PrependScheme: String { case always, first, never }

    init(_ f: JSONFields) throws {
        switch try f.type() {
        case "Sequence":
            self = .sequence(try f.array("pretokenizers").enumerated().map {
                try PreTokenizer(JSONFields($0.element, path: "\(f.path).pretokenizers[\($0.offset)]"))
            })
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: try f.bool("add_prefix_space", default: true),
                              useRegex: try f.bool("use_regex", default: true))
        case "Split":
            let pattern = try f.fields("pattern")
            let matcher: SplitMatcher
            if let literal = pattern.object["String"] as? String, !literal.isEmpty {
                matcher = .literal(Array(literal.unicodeScalars))
            } else if let regex = pattern.object["Regex"] as? String {
                guard let known = SplitPattern(regex: regex) else {
                    throw TextError("tokenizer.json: Split pre-tokenizer regex '\(regex)' is not supported (known: the GPT-2, Llama 3 and Qwen2 patterns)")
                }
                matcher = .pattern(known)
            } else {
                throw TextError("\(f.path).pattern must be {\"String\": non-empty} or {\"Regex\": ...}")
            }
            let name = try f.string("behavior")
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw TextError("tokenizer.json: Split behavior '\(name)' is not supported")
            }
            self = .split(matcher, behavior, invert: try f.bool("invert", default: false))
        case "Metaspace":
            let replacement = Array(try f.string("replacement").unicodeScalars)
            guard replacement.count == 1 else { throw TextError("\(f.path).replacement must be one character") }
            self = .metaspace(replacement: replacement[0], prepend: try prependScheme(f), split: try f.bool("split", default: true))
        case let other: throw TextError("tokenizer.json: pre-tokenizer type '\(other)' is not supported")
        }
    }

    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let all):
            return all.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [Piece] in
                var p = piece
                if addPrefixSpace, p.text.first != " " { p.text.insert(" ", at: 0) }
                let parts = useRegex ? splitPiece(p, ranges: SplitPattern.gpt2.matches(p.text), .isolated) : [p]
                return parts.map { Piece(text: ByteLevel.encode($0.text), atStart: $0.atStart) }
            }
        case .split(let matcher, let behavior, let invert):
            return pieces.flatMap { piece -> [Piece] in
                var ranges = matcher.matches(piece.text)
                if invert { ranges = complement(ranges, count: piece.text.count) }
                return splitPiece(piece, ranges: ranges, behavior)
            }
        case .metaspace(let replacement, let prepend, let splitting):
            return pieces.flatMap { piece -> [Piece] in
                var t = piece.text.map { $0 == " " ? replacement : $0 }
                let prefix = (prepend == .always || (prepend == .first && piece.atStart)) && t.first != replacement
                if prefix { t.insert(replacement, at: 0) }
                let p = Piece(text: t, atStart: piece.atStart)
                guard splitting else { return [p] }
                return splitPiece(p, ranges: t.indices.filter { t[$0] == replacement }.map { $0..<($0 + 1) }, .mergedWithNext)
            }
        }
    }
}

func prependScheme(_ f: JSONFields) throws -> PreTokenizer.PrependScheme {
    if let name = try f.optionalString("prepend_scheme") {
        guard let scheme = PreTokenizer.PrependScheme(rawValue: name) else {
            throw TextError("\(f.path).prepend_scheme '\(name)' is not supported")
        }
        return scheme
    }
    // Files from before prepend_scheme existed say add_prefix_space instead.
    return try f.bool("add_prefix_space", default: true) ? .always : .never
}

enum SplitMatcher {
    case literal([Unicode.Scalar])
    case pattern(SplitPattern)

    func matches(_ t: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .pattern(let p): return p.matches(t)
        case .literal(let l):
            var out: [Range<Int>] = []
            var i = 0
            while i + l.count <= t.count {
                if t[i..<(i + l.count)].elementsEqual(l) {
                    out.append(i..<(i + l.count))
                    i += l.count
                } else {
                    i += 1
                }
            }
            return out
        }
    }
}

/// tokenizers' SplitDelimiterBehavior: what becomes of the matched delimiters.
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

private func complement(_ ranges: [Range<Int>], count: Int) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var at = 0
    for r in ranges {
        if at < r.lowerBound { out.append(at..<r.lowerBound) }
        at = r.upperBound
    }
    if at < count { out.append(at..<count) }
    return out
}

/// Splits `piece` around the match `ranges` (sorted, disjoint) as tokenizers'
/// NormalizedString::split does; empty parts are dropped.
func splitPiece(_ piece: Piece, ranges: [Range<Int>], _ behavior: SplitBehavior) -> [Piece] {
    // All parts, each flagged as match or not.
    var parts: [(range: Range<Int>, isMatch: Bool)] = []
    var at = 0
    for r in ranges {
        if at < r.lowerBound { parts.append((at..<r.lowerBound, false)) }
        parts.append((r, true))
        at = r.upperBound
    }
    if at < piece.text.count { parts.append((at..<piece.text.count, false)) }

    var kept: [Range<Int>] = []
    switch behavior {
    case .removed: kept = parts.filter { !$0.isMatch }.map(\.range)
    case .isolated: kept = parts.map(\.range)
    case .mergedWithPrevious:
        var previousMatch = false
        for p in parts {
            if p.isMatch, !previousMatch, let last = kept.last {
                kept[kept.count - 1] = last.lowerBound..<p.range.upperBound
            } else {
                kept.append(p.range)
            }
            previousMatch = p.isMatch
        }
    case .mergedWithNext:
        var previousMatch = false
        for p in parts.reversed() {
            if p.isMatch, !previousMatch, let last = kept.last {
                kept[kept.count - 1] = p.range.lowerBound..<last.upperBound
            } else {
                kept.append(p.range)
            }
            previousMatch = p.isMatch
        }
        kept.reverse()
    case .contiguous:
        var previousMatch = false
        for p in parts {
            if p.isMatch == previousMatch, let last = kept.last {
                kept[kept.count - 1] = last.lowerBound..<p.range.upperBound
            } else {
                kept.append(p.range)
            }
            previousMatch = p.isMatch
        }
    }
    return kept.filter { !$0.isEmpty }.map {
        Piece(text: Array(piece.text[$0]), atStart: piece.atStart && $0.lowerBound == 0)
    }
}
