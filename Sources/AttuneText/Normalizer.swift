import Foundation

/// tokenizer.json's "normalizer": rewrites text before pre-tokenization (HF applies it to
/// each stretch of text between added tokens separately; see `AddedVocabulary`).
indirect enum Normalizer {
    case sequence([Normalizer])
    /// Prepends the string to non-empty text (Llama 2's "▁").
    case prepend([Unicode.Scalar])
    /// Replaces every occurrence of a literal string (regex patterns are refused).
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    case nfc, nfd, nfkc, nfkd, lowercase

    init(_ f: JSONFields) throws {
        switch try f.type() {
        case "Sequence":
            self = .sequence(try f.array("normalizers").enumerated().map {
                try Normalizer(JSONFields($0.element, path: "\(f.path).normalizers[\($0.offset)]"))
            })
        case "Prepend": self = .prepend(Array(try f.string("prepend").unicodeScalars))
        case "Replace":
            let (pattern, content) = try literalReplacement(f)
            self = .replace(pattern: pattern, content: content)
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case let other: throw TextError("tokenizer.json: normalizer type '\(other)' is not supported")
        }
    }

    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .sequence(let all): return all.reduce(text) { $1.normalize($0) }
        case .prepend(let prefix): return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content): return replaceAll(text, pattern, content)
        case .nfc: return Array(string(text).precomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfd: return Array(string(text).decomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkc: return Array(string(text).precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfkd: return Array(string(text).decomposedStringWithCompatibilityMapping.unicodeScalars)
        case .lowercase: return text.flatMap { $0.properties.lowercaseMapping.unicodeScalars }
        }
    }
}

/// The {"pattern": {"String": ...}, "content": ...} of a Replace normalizer or decoder.
func literalReplacement(_ f: JSONFields) throws -> (pattern: [Unicode.Scalar], content: [Unicode.Scalar]) {
    let pattern = try f.fields("pattern")
    guard let literal = pattern.object["String"] as? String else {
        throw TextError("\(f.path): Replace with a Regex pattern is not supported")
    }
    guard !literal.isEmpty else { throw TextError("\(f.path).pattern: empty string") }
    return (Array(literal.unicodeScalars), Array(try f.string("content").unicodeScalars))
}

func replaceAll(_ text: [Unicode.Scalar], _ pattern: [Unicode.Scalar], _ content: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
        if text[i] == pattern[0], i + pattern.count <= text.count, text[i..<(i + pattern.count)].elementsEqual(pattern) {
            out += content
            i += pattern.count
        } else {
            out.append(text[i])
            i += 1
        }
    }
    return out
}

func string<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
    var s = String.UnicodeScalarView()
    s.append(contentsOf: scalars)
    return String(s)
}
