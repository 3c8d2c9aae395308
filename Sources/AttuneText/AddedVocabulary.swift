/// One entry of tokenizer.json's "added_tokens".
struct AddedToken {
    var id: Int32
    var content: String
    var special: Bool
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    var normalized: Bool

    init(_ f: JSONFields) throws {
        let id = try f.int("id")
        guard let id32 = Int32(exactly: id), id32 >= 0 else { throw TextError("\(f.path).id \(id) is out of range") }
        self.id = id32
        content = try f.string("content")
        guard !content.isEmpty else { throw TextError("\(f.path).content is empty") }
        special = try f.bool("special", default: false)
        singleWord = try f.bool("single_word", default: false)
        lstrip = try f.bool("lstrip", default: false)
        rstrip = try f.bool("rstrip", default: false)
        normalized = try f.bool("normalized", default: !special)
    }
}

/// A stretch of input: either text for the pipeline or an added token's id.
enum Segment {
    case text(Piece)
    case token(Int32)
}

/// Finds added tokens in text as tokenizers' AddedVocabulary does: leftmost-longest
/// matching, then the token's single_word / lstrip / rstrip options.
struct AddedTokenMatcher {
    private struct Pattern { var scalars: [Unicode.Scalar]; var token: AddedToken }
    /// Candidates by first scalar, longest first.
    private let byFirst: [Unicode.Scalar: [Pattern]]

    init(_ tokens: [(pattern: [Unicode.Scalar], token: AddedToken)]) {
        var byFirst: [Unicode.Scalar: [Pattern]] = [:]
        for (pattern, token) in tokens where !pattern.isEmpty {
            byFirst[pattern[0], default: []].append(Pattern(scalars: pattern, token: token))
        }
        self.byFirst = byFirst.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
    }

    /// Splits one piece into text and added-token segments.
    func split(_ piece: Piece) -> [Segment] {
        let t = piece.text
        if byFirst.isEmpty || t.isEmpty { return [.text(piece)] }
        var out: [Segment] = []
        var emitted = 0  // end of what is already in `out`
        var i = 0
        func text(_ r: Range<Int>) {
            if !r.isEmpty { out.append(.text(Piece(text: Array(t[r]), atStart: piece.atStart && r.lowerBound == 0))) }
        }
        while i < t.count {
            guard let candidates = byFirst[t[i]],
                  let hit = candidates.first(where: { i + $0.scalars.count <= t.count && t[i..<(i + $0.scalars.count)].elementsEqual($0.scalars) })
            else {
                i += 1
                continue
            }
            let matchEnd = i + hit.scalars.count
            var start = i, stop = matchEnd
            defer { i = matchEnd }  // the next search resumes after the raw match, as the automaton does
            let token = hit.token
            if token.singleWord {
                let wordBefore = start > 0 && isWordScalar(t[start - 1])
                let wordAfter = stop < t.count && isWordScalar(t[stop])
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                var s = start
                while s > 0, t[s - 1].properties.isWhitespace { s -= 1 }
                start = max(s, emitted)
            }
            if token.rstrip {
                while stop < t.count, t[stop].properties.isWhitespace { stop += 1 }
            }
            text(emitted..<start)
            out.append(.token(token.id))
            emitted = stop
        }
        text(emitted..<t.count)
        return out
    }
}

/// Rust regex's Unicode \w: alphabetic, marks, decimal digits, connector punctuation, joiners.
private func isWordScalar(_ s: Unicode.Scalar) -> Bool {
    let p = s.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}
