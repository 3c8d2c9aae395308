/// An error importing a model: a one-line message that names the file at
/// fault and, where there is one, the tensor or config key. It is meant to be
/// shown to a user as is.
public struct ModelImportError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A name from an untrusted file, quoted for a one-line message: `'name'`.
///
/// A hostile header can put anything in a name, so quotes, backslashes,
/// control characters and line separators are escaped (`\'`, `\\`, `\u{A}`)
/// and very long names are cut: the message stays one line and unambiguous.
func quoted(_ s: String) -> String {
    let limit = 200
    var out = "'"
    var count = 0
    for scalar in s.unicodeScalars {
        if count == limit {
            out += "…"
            break
        }
        count += 1
        switch scalar {
        case "'": out += "\\'"
        case "\\": out += "\\\\"
        case _ where scalar.properties.generalCategory == .control
            || scalar.properties.generalCategory == .lineSeparator
            || scalar.properties.generalCategory == .paragraphSeparator:
            out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "'"
}
