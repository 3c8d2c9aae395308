import Foundation

/// tokenizer.json's "decoder": turns the tokens of a list of ids back into text. Each
/// component maps a list of token strings to a list of strings, as tokenizers' decode_chain.
indirect enum Decoder {
    case sequence([Decoder])
    case byteLevel
    case metaspace(replacement: Unicode.Scalar, prepend: PreTokenizer.PrependScheme)
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)

    init(_ f: JSONFields) throws {
        switch try f.type() {
        case "Sequence":
            self = .sequence(try f.array("decoders").enumerated().map {
                try Decoder(JSONFields($0.element, path: "\(f.path).decoders[\($0.offset)]"))
            })
        case "ByteLevel": self = .byteLevel
        case "Metaspace":
            let replacement = Array(try f.string("replacement").unicodeScalars)
            guard replacement.count == 1 else { throw TextError("\(f.path).replacement must be one character") }
            self = .metaspace(replacement: replacement[0], prepend: try prependScheme(f))
        case "Replace":
            let (pattern, content) = try literalReplacement(f)
            self = .replace(pattern: pattern, content: content)
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            let content = Array(try f.string("content").unicodeScalars)
            guard content.count == 1 else { throw TextError("\(f.path).content must be one character") }
            let start = try f.int("start"), stop = try f.int("stop")
            guard start >= 0, stop >= 0 else { throw TextError("\(f.path): start and stop must be >= 0") }
            self = .strip(content: content[0], start: start, stop: stop)
        case let other: throw TextError("tokenizer.json: decoder type '\(other)' is not supported")
        }
    }

    var containsByteFallback: Bool {
        switch self {
        case .byteFallback: return true
        case .sequence(let all): return all.contains { $0.containsByteFallback }
        default: return false
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let all):
            return all.reduce(tokens) { $1.decodeChain($0) }
        case .byteLevel:
            // Tokens spelt entirely in mapped characters become their bytes; any other token
            // (an added token such as "<|eot_id|>") contributes its own UTF-8.
            var bytes: [UInt8] = []
            for token in tokens {
                let start = bytes.count
                for s in token.unicodeScalars {
                    guard let b = ByteLevel.byte(s) else {
                        bytes.removeSubrange(start...)
                        bytes += Array(token.utf8)
                        break
                    }
                    bytes.append(b)
                }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let prepend):
            return tokens.enumerated().map { i, token in
                var out = String.UnicodeScalarView()
                for s in token.unicodeScalars {
                    if s == replacement {
                        if !(i == 0 && prepend != .never) { out.append(" ") }  // tokenizers drops every ▁ of the first token
                    } else {
                        out.append(s)
                    }
                }
                return String(out)
            }
        case .replace(let pattern, let content):
            return tokens.map { string(replaceAll(Array($0.unicodeScalars), pattern, content)) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                if pending.isEmpty { return }
                if let s = String(bytes: pending, encoding: .utf8) {
                    out.append(s)
                } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let b = byteToken(token) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var s = Array(token.unicodeScalars)
                var cut = 0
                while cut < start, cut < s.count, s[cut] == content { cut += 1 }
                s.removeFirst(cut)
                cut = 0
                while cut < stop, cut < s.count, s[s.count - 1 - cut] == content { cut += 1 }
                s.removeLast(cut)
                return string(s)
            }
        }
    }
}

/// The byte of a "<0xNN>" token (two uppercase or lowercase hex digits), else nil.
func byteToken(_ token: String) -> UInt8? {
    let u = Array(token.utf8)
    guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"), u[5] == UInt8(ascii: ">") else {
        return nil
    }
    return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
}
