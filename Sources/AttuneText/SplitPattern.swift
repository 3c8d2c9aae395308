/// The Split pre-tokenizer regexes of the byte-level BPE families, as hand-written matchers.
///
/// tokenizers runs these through Oniguruma. Each alternation is leftmost-first with
/// backtracking; the functions below reproduce exactly that for these patterns (see the
/// comments per branch) on Unicode scalars, with \p{L} and \p{N} by general category and
/// \s as the White_Space property (Oniguruma's Unicode definitions). Every position of
/// any text starts a non-empty match, so the matches tile the text. Any other regex is refused:
/// an approximate matcher would silently produce different ids.
enum SplitPattern: Equatable {
    /// GPT-2 (also ByteLevel's `use_regex`):
    /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    case gpt2
    /// Llama 3 (`digitRun` 3) and Qwen2 (`digitRun` 1):
    /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    case llama3(digitRun: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(regex: String) {
        switch regex {
        case Self.gpt2Source: self = .gpt2
        case Self.llama3Source: self = .llama3(digitRun: 3)
        case Self.qwen2Source: self = .llama3(digitRun: 1)
        default: return nil
        }
    }

    /// The match ranges, in order; together they cover `t`.
    func matches(_ t: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < t.count {
            let end = matchEnd(t, i)
            out.append(i..<end)
            i = end
        }
        return out
    }

    func matchEnd(_ t: [Unicode.Scalar], _ i: Int) -> Int {
        let n = t.count
        let c = CharClass(t[i])
        switch self {
        case .gpt2:
            if let e = contraction(t, i, ignoringCase: false) { return e }
            // ` ?X+` for X = letter, number, other: the optional space is taken only if X follows.
            for kind in [CharClass.letter, .number, .other] {
                if c == kind { return run(t, i, kind) }
                if t[i] == " ", i + 1 < n, CharClass(t[i + 1]) == kind { return run(t, i + 1, kind) }
            }
        case .llama3(let digitRun):
            if let e = contraction(t, i, ignoringCase: true) { return e }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if c == .letter { return run(t, i, .letter) }
            if c != .number, !isNewline(t[i]), i + 1 < n, CharClass(t[i + 1]) == .letter { return run(t, i + 1, .letter) }
            // \p{N}{1,3}
            if c == .number {
                var e = i + 1
                while e < n, e - i < digitRun, CharClass(t[e]) == .number { e += 1 }
                return e
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            var j = i
            if t[j] == " ", j + 1 < n, CharClass(t[j + 1]) == .other { j += 1 }
            if CharClass(t[j]) == .other {
                var e = run(t, j, .other)
                while e < n, isNewline(t[e]) { e += 1 }
                return e
            }
            // \s*[\r\n]+ : backtracking ends the match just after the run's last newline.
            if c == .space {
                let e = run(t, i, .space)
                if let last = (i..<e).last(where: { isNewline(t[$0]) }) { return last + 1 }
            }
        }
        // \s+(?!\S)|\s+ : a space run gives its last space to the word that follows.
        if c == .space {
            let e = run(t, i, .space)
            return e < n && e - i > 1 ? e - 1 : e
        }
        return i + 1  // unreachable: every scalar is a letter, number, space or other
    }

    private func run(_ t: [Unicode.Scalar], _ start: Int, _ kind: CharClass) -> Int {
        var e = start
        while e < t.count, CharClass(t[e]) == kind { e += 1 }
        return e
    }

    /// 's 't 're 've 'm 'll 'd, case-folded like Oniguruma's (?i:) when asked ('ſ' folds to 's').
    private func contraction(_ t: [Unicode.Scalar], _ i: Int, ignoringCase: Bool) -> Int? {
        guard t[i] == "'", i + 1 < t.count else { return nil }
        func at(_ k: Int) -> Unicode.Scalar? {
            guard k < t.count else { return nil }
            let s = t[k]
            if !ignoringCase { return s }
            if s == "\u{17F}" { return "s" }
            return s.value < 128 ? Unicode.Scalar(UInt8(ascii: s) | (s.properties.isUppercase ? 0x20 : 0)) : s
        }
        switch at(i + 1) {
        case "s", "t", "m", "d": return i + 2
        case "r", "v": return at(i + 2) == "e" ? i + 3 : nil
        case "l": return at(i + 2) == "l" ? i + 3 : nil
        default: return nil
        }
    }
}

private func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\n" || s == "\r" }

private extension UInt8 {
    init(ascii s: Unicode.Scalar) { self = UInt8(truncatingIfNeeded: s.value) }
}

/// The four classes the patterns distinguish.
enum CharClass: Equatable {
    case letter, number, space, other

    init(_ s: Unicode.Scalar) {
        if s.value < 128 {
            self = asciiClass[Int(s.value)]
            return
        }
        let p = s.properties
        if p.isWhitespace { self = .space; return }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }
}

private let asciiClass: [CharClass] = (0..<128).map { v in
    let s = Unicode.Scalar(UInt8(v))
    if (9...13).contains(v) || v == 32 { return .space }
    if ("a"..."z").contains(s) || ("A"..."Z").contains(s) { return .letter }
    if ("0"..."9").contains(s) { return .number }
    return .other
}
