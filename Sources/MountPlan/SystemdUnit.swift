/// systemd unit-name escaping (systemd.unit(5), "String Escaping for Inclusion in Unit Names").
public enum SystemdName {
    /// `/etc/NetworkManager/system-connections` -> `etc-NetworkManager-system\x2dconnections`
    /// (without the suffix), as `systemd-escape --path` does.
    public static func escapePath(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.isEmpty { return "-" }
        var out = ""
        for (i, part) in parts.enumerated() {
            if i > 0 { out += "-" }
            for (j, byte) in part.utf8.enumerated() {
                let c = Character(Unicode.Scalar(byte))
                let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x3A || byte == 0x5F || (byte == 0x2E && !(i == 0 && j == 0))
                out += plain ? String(c) : "\\x" + hex2(byte)
            }
        }
        return out
    }

    /// `etc-NetworkManager-system\x2dconnections.mount` -> `/etc/NetworkManager/system-connections`.
    /// The unit type suffix, if any, is removed first.
    public static func unescapePath(_ unitName: String) -> String {
        var name = Substring(unitName)
        for suffix in [".mount", ".automount", ".swap", ".service", ".path"] where name.hasSuffix(suffix) {
            name = name.dropLast(suffix.count)
            break
        }
        if name == "-" { return "/" }
        let slashed = name.split(separator: "-", omittingEmptySubsequences: false).joined(separator: "/")
        return "/" + decodeHexEscapes(slashed)
    }

    /// Decodes `\xNN` escapes (systemd unit names, udev by-label links).
    public static func decodeHexEscapes<S: StringProtocol>(_ s: S) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, b[i + 1] == 0x78, let hi = hexValue(b[i + 2]), let lo = hexValue(b[i + 3]) {
                out.append(hi << 4 | lo)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    private static func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }
}

/// One `Key=Value` line of a unit file or drop-in, with where it came from.
public struct UnitAssignment: Sendable, Equatable {
    public var section: String
    public var key: String
    public var value: String
    public var file: String
    public var line: Int
}

/// A parsed unit: its main file plus drop-ins, as an ordered list of assignments.
public struct UnitFile: Sendable, Equatable {
    public var name: String
    /// The file the unit was loaded from (after resolving the search path), for reports.
    public var path: String
    public var assignments: [UnitAssignment]

    public init(name: String, path: String, assignments: [UnitAssignment] = []) {
        self.name = name
        self.path = path
        self.assignments = assignments
    }

    /// Lines longer than this are ignored with a warning.
    public static let maximumLineLength = 64 * 1024

    /// Parses unit-file syntax: `[Section]` headers, `#`/`;` comments, `\` line continuation.
    public static func parse(_ bytes: [UInt8], file: String) -> (assignments: [UnitAssignment], warnings: [ConfigWarning]) {
        var out: [UnitAssignment] = []
        var warnings: [ConfigWarning] = []
        var section = ""
        var pending = ""
        var pendingLine = 0
        var lineNumber = 0
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if raw.count > maximumLineLength {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "line of \(raw.count) bytes ignored"))
                pending = ""
                continue
            }
            if raw.contains(0) {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "line with NUL bytes ignored"))
                pending = ""
                continue
            }
            var text = String(decoding: raw, as: UTF8.self)
            if text.hasSuffix("\r") { text.removeLast() }
            let trimmed = text.trimmingCharacters(in: " \t")
            if pending.isEmpty && (trimmed.hasPrefix("#") || trimmed.hasPrefix(";")) { continue }
            if !pending.isEmpty && (trimmed.hasPrefix("#") || trimmed.hasPrefix(";")) { continue }
            if trimmed.hasSuffix("\\") {
                if pending.isEmpty { pendingLine = lineNumber }
                pending += String(trimmed.dropLast()) + " "
                if pending.utf8.count > maximumLineLength {
                    warnings.append(ConfigWarning(file: file, line: pendingLine, message: "continued line over \(maximumLineLength) bytes ignored"))
                    pending = ""
                }
                continue
            }
            var logical = pending + trimmed
            var at = lineNumber
            if !pending.isEmpty { at = pendingLine }
            pending = ""
            logical = logical.trimmingCharacters(in: " \t")
            if logical.isEmpty { continue }
            if logical.hasPrefix("[") {
                guard logical.hasSuffix("]") else {
                    warnings.append(ConfigWarning(file: file, line: at, message: "malformed section header"))
                    continue
                }
                section = String(logical.dropFirst().dropLast())
                continue
            }
            guard let eq = logical.firstIndex(of: "=") else {
                warnings.append(ConfigWarning(file: file, line: at, message: "line without '=' ignored"))
                continue
            }
            let key = logical[..<eq].trimmingCharacters(in: " \t")
            let value = logical[logical.index(after: eq)...].trimmingCharacters(in: " \t")
            guard !section.isEmpty else {
                warnings.append(ConfigWarning(file: file, line: at, message: "assignment outside a section ignored"))
                continue
            }
            out.append(UnitAssignment(section: section, key: key, value: value, file: file, line: at))
        }
        return (out, warnings)
    }

    /// The last value of a single-valued key (`What=`, `Where=`, `Type=`, `Options=`).
    public func value(_ section: String, _ key: String) -> String? {
        assignments.last { $0.section == section && $0.key == key }?.value
    }

    /// The assignment that set `value(section, key)`, for "declared by" reports.
    public func assignment(_ section: String, _ key: String) -> UnitAssignment? {
        assignments.last { $0.section == section && $0.key == key }
    }

    /// A list-valued key (`Wants=`, `Requires=`, `WantedBy=`): space-separated words from every
    /// assignment in order, an empty assignment clearing what came before.
    public func list(_ section: String, _ key: String) -> [String] {
        var result: [String] = []
        for a in assignments where a.section == section && a.key == key {
            if a.value.isEmpty { result.removeAll(); continue }
            result += a.value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0).trimmingQuotes() }
        }
        return result
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
