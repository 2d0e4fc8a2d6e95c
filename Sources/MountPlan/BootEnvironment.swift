import DiskImage

/// GRUB's environment block (`grubenv`): "# GRUB Environment Block\n" then `key=value` lines,
/// padded with `#` to 1024 bytes.
public enum GrubEnvironment {
    public static let signature = "# GRUB Environment Block"

    /// Parses a grubenv file; nil when the signature is missing (not a grubenv).
    public static func parse(_ bytes: [UInt8]) -> [String: String]? {
        let text = String(decoding: bytes.prefix(64 * 1024), as: UTF8.self)
        guard text.hasPrefix(signature) else { return nil }
        var env: [String: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            if line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else { continue }
            env[key] = unescape(line[line.index(after: eq)...])
        }
        return env
    }

    /// grub-editenv escapes `\`, newline as `\n`.
    private static func unescape(_ s: Substring) -> String {
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                out.append(c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}

/// A U-Boot environment: CRC-32 (little-endian), an optional flags byte (redundant
/// environments), then NUL-separated `key=value` pairs ending with an empty string.
public enum UBootEnvironment {
    /// Environment sizes tried when the size is not known (CONFIG_ENV_SIZE values seen in
    /// practice; HAOS uses 0x2000..0x8000 bytes).
    public static let candidateSizes = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000]

    public struct Found: Sendable, Equatable {
        public var variables: [String: String]
        public var offset: Int
        public var size: Int
        public var redundant: Bool
        /// The redundant-environment flags byte (higher wins), nil for a single environment.
        public var flags: UInt8?
    }

    /// Finds a valid environment at the start of `bytes` (and a redundant copy right after it).
    /// Returns nil when no candidate size has a matching CRC (a zeroed or foreign partition).
    public static func find(in bytes: [UInt8]) -> Found? {
        var best: Found?
        for size in candidateSizes where size <= bytes.count {
            for copyOffset in [0, size] where copyOffset + size <= bytes.count {
                guard let f = parse(bytes, offset: copyOffset, size: size) else { continue }
                best = best.map { $0.size == f.size ? newer($0, f) : $0 } ?? f
            }
            if best != nil { return best }
        }
        return best
    }

    /// Of two valid copies of a redundant environment, the one U-Boot and libubootenv use: the
    /// higher flags byte, counted modulo 256 (a flags value just past 255 is newer than 255);
    /// the first on a tie or when a copy is not redundant.
    public static func newer(_ a: Found, _ b: Found) -> Found {
        guard let fa = a.flags, let fb = b.flags, fa != fb else { return a }
        return fb &- fa < 128 ? b : a
    }

    static func parse(_ bytes: [UInt8], offset: Int, size: Int) -> Found? {
        guard offset >= 0, size > 5, offset + size <= bytes.count else { return nil }
        let stored = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
        for redundant in [false, true] {
            let dataStart = offset + (redundant ? 5 : 4)
            let data = bytes[dataStart..<(offset + size)]
            guard CRC32.checksum(data) == stored, data.first != 0 || data.dropFirst().first != 0 else { continue }
            var vars: [String: String] = [:]
            for pair in data.split(separator: 0, omittingEmptySubsequences: false) {
                if pair.isEmpty { break }
                let text = String(decoding: pair, as: UTF8.self)
                guard let eq = text.firstIndex(of: "=") else { continue }
                vars[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            if vars.isEmpty { continue }
            return Found(variables: vars, offset: offset, size: size, redundant: redundant, flags: redundant ? bytes[offset + 4] : nil)
        }
        return nil
    }

    /// Parses a plain-text environment file (`uEnv.txt`, `resinOS_uEnv.txt`, `bootenv`):
    /// `key=value` lines, `#` comments.
    public static func parseText(_ bytes: [UInt8]) -> [String: String] {
        var vars: [String: String] = [:]
        for line in String(decoding: bytes.prefix(1 << 20), as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let t = line.trimmingCharacters(in: " \t")
            if t.hasPrefix("#") { continue }
            guard let eq = t.firstIndex(of: "=") else { continue }
            vars[String(t[..<eq]).trimmingCharacters(in: " \t")] = String(t[t.index(after: eq)...]).trimmingCharacters(in: " \t")
        }
        return vars
    }
}

/// `/etc/fw_env.config` (libubootenv, u-boot-tools): where the U-Boot environment lives, one
/// copy per line, `DEVICE OFFSET SIZE [SECTOR-SIZE [SECTORS]]`, `#` comments; a second line is
/// the redundant copy.
public enum FwEnvConfig {
    public struct Copy: Sendable, Equatable {
        /// A file path, a partition (`/dev/mmcblk0p3`, `/dev/disk/by-partlabel/uboot-env`) or the
        /// whole disk (`/dev/mmcblk0`).
        public var device: String
        public var offset: UInt64
        public var size: Int
    }

    /// The copies a config names (at most two, as U-Boot reads), lines that do not parse skipped.
    public static func parse(_ bytes: [UInt8]) -> [Copy] {
        var copies: [Copy] = []
        for line in String(decoding: bytes.prefix(64 * 1024), as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 3, !words[0].hasPrefix("#"),
                  let offset = number(words[1]), let size = number(words[2]), size > 5, size <= 1 << 20 else { continue }
            copies.append(Copy(device: String(words[0]), offset: offset, size: Int(size)))
            if copies.count == 2 { break }
        }
        return copies
    }

    /// `0x4000` or `16384`.
    static func number(_ word: Substring) -> UInt64? {
        word.hasPrefix("0x") || word.hasPrefix("0X") ? UInt64(word.dropFirst(2), radix: 16) : UInt64(word)
    }
}

/// A kernel command line: space-separated `key=value` or `flag` words, double quotes group.
public enum KernelCommandLine {
    public static func parse(_ text: String) -> [(key: String, value: String?)] {
        var words: [String] = []
        var current = ""
        var quoted = false
        for c in text.prefix(1 << 16) {
            if c == "\"" { quoted.toggle(); continue }
            if !quoted && (c == " " || c == "\t" || c == "\n" || c == "\r") {
                if !current.isEmpty { words.append(current); current = "" }
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words.map { w in
            if let eq = w.firstIndex(of: "=") { return (String(w[..<eq]), String(w[w.index(after: eq)...])) }
            return (w, nil)
        }
    }

    /// The last value given for `key` (the kernel uses the last `root=`).
    public static func value(_ key: String, in text: String) -> String? {
        parse(text).last { $0.key == key }?.value ?? nil
    }
}
