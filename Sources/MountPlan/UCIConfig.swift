import FileSystems

/// An OpenWrt UCI configuration file (`/etc/config/NAME`), as libuci's parser reads it: lines of
/// `config TYPE ['NAME']`, `option KEY 'VALUE'` and `list KEY 'VALUE'`, words bare or quoted
/// ('...' verbatim, "..." with backslash escapes, a backslash escaping the next character in a
/// bare word), `#` comments. A line that does not parse is skipped with a warning, as `uci`
/// reports it. Bounded: 4096 sections, 64 KiB lines (the file itself is read with a size cap).
public struct UCIConfig: Sendable {
    public struct Section: Sendable, Equatable {
        public var type: String
        public var name: String?
        /// The line of its `config` statement.
        public var line: Int
        public var options: [String: String] = [:]
        public var optionLines: [String: Int] = [:]
        public var lists: [String: [String]] = [:]
    }

    static let maximumSections = 4096
    static let maximumLineLength = 64 * 1024

    public var sections: [Section] = []
    public var warnings: [ConfigWarning] = []

    public init(_ bytes: [UInt8], file: String) {
        var lineNumber = 0
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            guard raw.count <= Self.maximumLineLength, !raw.contains(0) else {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "line ignored (NUL bytes or over \(Self.maximumLineLength) bytes)"))
                continue
            }
            guard let words = Self.words(Array(raw)) else {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "unterminated quote; line ignored"))
                continue
            }
            guard let keyword = words.first else { continue }
            switch keyword {
            case "config", "package":
                guard keyword == "config" else { continue }
                guard words.count >= 2, words.count <= 3 else {
                    warnings.append(ConfigWarning(file: file, line: lineNumber, message: "config needs a type and at most a name; line ignored"))
                    continue
                }
                guard sections.count < Self.maximumSections else {
                    warnings.append(ConfigWarning(file: file, line: lineNumber, message: "more than \(Self.maximumSections) sections; the rest ignored"))
                    return
                }
                sections.append(Section(type: words[1], name: words.count == 3 ? words[2] : nil, line: lineNumber))
            case "option", "list":
                guard words.count == 3, !sections.isEmpty else {
                    warnings.append(ConfigWarning(file: file, line: lineNumber, message: "\(keyword) needs a key and a value inside a config section; line ignored"))
                    continue
                }
                let last = sections.count - 1
                if keyword == "option" {
                    sections[last].options[words[1]] = words[2]
                    sections[last].optionLines[words[1]] = lineNumber
                } else {
                    sections[last].lists[words[1], default: []].append(words[2])
                }
            default:
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "unknown statement '\(keyword)'; line ignored"))
            }
        }
    }

    /// The line's words, nil when a quote is not closed.
    static func words(_ line: [UInt8]) -> [String]? {
        var words: [String] = []
        var i = 0
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D }
        while i < line.count {
            while i < line.count, isSpace(line[i]) { i += 1 }
            guard i < line.count, line[i] != 0x23 else { break }   // '#': a comment to the end
            var word: [UInt8] = []
            while i < line.count, !isSpace(line[i]) {
                let b = line[i]
                if b == 0x27 {   // '...': verbatim
                    guard let end = line[(i + 1)...].firstIndex(of: 0x27) else { return nil }
                    word += line[(i + 1)..<end]
                    i = end + 1
                } else if b == 0x22 {   // "...": backslash escapes
                    i += 1
                    var closed = false
                    while i < line.count {
                        if line[i] == 0x22 { closed = true; i += 1; break }
                        if line[i] == 0x5C, i + 1 < line.count { i += 1 }
                        word.append(line[i])
                        i += 1
                    }
                    guard closed else { return nil }
                } else if b == 0x5C, i + 1 < line.count {
                    word.append(line[i + 1])
                    i += 2
                } else {
                    word.append(b)
                    i += 1
                }
            }
            words.append(String(decoding: word, as: UTF8.self))
        }
        return words
    }
}

/// OpenWrt's block-mount configuration (`/etc/config/fstab`, read by fstools' `block`): `config
/// mount` and `config swap` sections naming a device by `uuid`, `label` or `device` (matched in
/// that order, as `find_block_info`), `enabled` ('1' unless '0'), `options`, `fstype`, and the
/// mount's `target`; a mount whose target is /overlay (or with `is_rootfs '1'`) is the extroot.
public struct UCIFstab: Sendable {
    public static let file = "/etc/config/fstab"

    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case mount, swap }
        public var kind: Kind
        public var target: String?
        /// The device as an fstab spec: UUID=..., LABEL=... or a /dev path; nil when none given.
        public var device: String?
        public var enabled: Bool
        public var options: [String]
        public var fstype: String?
        public var line: Int

        public var isExtroot: Bool { kind == .mount && target.map(Planner.normalise) == "/overlay" }
        public var source: MountSource { .fstab(file: UCIFstab.file, line: line) }
    }

    public var entries: [Entry] = []
    public var warnings: [ConfigWarning]

    public init(_ bytes: [UInt8]) {
        let config = UCIConfig(bytes, file: Self.file)
        warnings = config.warnings
        for s in config.sections where s.type == "mount" || s.type == "swap" {
            let device = s.options["uuid"].map { "UUID=\($0)" } ?? s.options["label"].map { "LABEL=\($0)" } ?? s.options["device"]
            var target = s.options["target"]
            if s.type == "mount", s.options["is_rootfs"] == "1" { target = "/overlay" }
            entries.append(Entry(kind: s.type == "mount" ? .mount : .swap, target: target, device: device,
                                 enabled: s.options["enabled"] != "0",
                                 options: (s.options["options"] ?? "").split(separator: ",").map(String.init),
                                 fstype: s.options["fstype"], line: s.line))
        }
    }

    /// The file in `fs` (the booted root's configuration view), nil when it has none; an
    /// unreadable one is a warning.
    static func read(from fs: any FileSystemReader, warnings: inout [String]) -> UCIFstab? {
        ProfilePaths.reading(file, &warnings) {
            guard let inode = try fs.lookup(Array(file.utf8), followLast: true) else { return nil }
            return UCIFstab(try fs.readSmallFile(inode, limit: 1 << 20))
        }
    }
}
