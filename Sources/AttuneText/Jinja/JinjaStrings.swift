import Foundation

/// Python's str methods and datetime.strftime, as chat templates call them.
extension JinjaBuiltins {
    /// str.strip / lstrip / rstrip: `chars` nil means whitespace.
    static func strip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let drop: (Unicode.Scalar) -> Bool = { set?.contains($0) ?? $0.isPythonSpace }
        var scalars = Array(s.unicodeScalars)[...]
        if left { while let f = scalars.first, drop(f) { scalars = scalars.dropFirst() } }
        if right { while let l = scalars.last, drop(l) { scalars = scalars.dropLast() } }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + String(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// str.title: a letter after a non-letter is upper-cased, every other letter lower-cased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in s.unicodeScalars {
            let c = String(scalar)
            out += previousCased ? c.lowercased() : c.uppercased()
            previousCased = scalar.properties.isCased
        }
        return out
    }

    /// The most UTF-8 bytes `replace(s, old, new)` can produce (every occurrence replaced),
    /// known before replacing: a small text with a large `new` must not be built to learn it.
    static func replacedBytes(_ s: String, _ old: String, _ new: String) -> Int {
        guard !old.isEmpty, new.utf8.count > old.utf8.count else { return s.utf8.count }
        let occurrences = s.utf8.count / old.utf8.count
        let (grow, overflow) = occurrences.multipliedReportingOverflow(by: new.utf8.count - old.utf8.count)
        return overflow ? Int.max : s.utf8.count + grow
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        guard !old.isEmpty else { return s }
        var parts = s.components(separatedBy: old)
        guard count >= 0, parts.count - 1 > count else { return parts.joined(separator: new) }
        let head = parts[0...count].joined(separator: new)
        parts.removeFirst(count + 1)
        return ([head] + parts).joined(separator: old)
    }

    /// str.split: no separator splits on runs of whitespace and drops empty pieces.
    static func split(_ s: String, separator: String?, maxSplit: Int, line: Int) throws -> [String] {
        if let separator {
            guard !separator.isEmpty else { throw TextError("chat template line \(line): empty separator") }
            let parts = s.components(separatedBy: separator)
            guard maxSplit >= 0, parts.count - 1 > maxSplit else { return parts }
            return Array(parts[0..<maxSplit]) + [parts[maxSplit...].joined(separator: separator)]
        }
        var out: [String] = []
        var current = String.UnicodeScalarView()
        var scalars = Array(s.unicodeScalars)[...]
        while let c = scalars.first {
            if c.isPythonSpace {
                if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
                scalars = scalars.dropFirst()
                if maxSplit >= 0, out.count == maxSplit {
                    while let w = scalars.first, w.isPythonSpace { scalars = scalars.dropFirst() }
                    if !scalars.isEmpty { out.append(String(String.UnicodeScalarView(scalars))) }
                    return out
                }
            } else {
                current.append(c)
                scalars = scalars.dropFirst()
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }

    /// Python's datetime.now().strftime in the C locale, for the codes chat templates use.
    static func strftime(_ format: String, _ date: Date, line: Int) throws -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let c = calendar.dateComponents(in: TimeZone.current, from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        func pad(_ v: Int, _ width: Int = 2) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var out = ""
        var chars = Array(format)[...]
        while let ch = chars.first {
            chars = chars.dropFirst()
            guard ch == "%" else { out.append(ch); continue }
            guard let code = chars.first else { out.append("%"); break }
            chars = chars.dropFirst()
            let hour = c.hour ?? 0
            switch code {
            case "d": out += pad(c.day ?? 1)
            case "m": out += pad(c.month ?? 1)
            case "Y": out += String(c.year ?? 1970)
            case "y": out += pad((c.year ?? 1970) % 100)
            case "H": out += pad(hour)
            case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "M": out += pad(c.minute ?? 0)
            case "S": out += pad(c.second ?? 0)
            case "b": out += String(months[(c.month ?? 1) - 1].prefix(3))
            case "B": out += months[(c.month ?? 1) - 1]
            case "a": out += String(days[(c.weekday ?? 1) - 1].prefix(3))
            case "A": out += days[(c.weekday ?? 1) - 1]
            case "j": out += pad(calendar.ordinality(of: .day, in: .year, for: date) ?? 1, 3)
            case "%": out += "%"
            default: throw TextError("chat template line \(line): strftime_now format code %\(code) is not supported")
            }
        }
        return out
    }
}

extension Unicode.Scalar {
    /// Python's str.isspace (and `\s` in jinja2's lexer): Unicode White_Space plus the
    /// ASCII separators U+001C...U+001F, which Python also counts.
    var isPythonSpace: Bool { properties.isWhitespace || (0x1C...0x1F).contains(value) }
}
