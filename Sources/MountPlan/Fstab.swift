import DiskImage

/// A warning about a configuration file: which file, which line, what is wrong.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible, Codable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// One line of /etc/fstab (fields after octal unescaping).
public struct FstabEntry: Sendable, Equatable {
    public var spec: String
    public var mountPoint: String
    public var type: String
    public var options: [String]
    public var line: Int

    /// `noauto` entries are not mounted at boot.
    public var isNoAuto: Bool { options.contains("noauto") }
    public var isBind: Bool { options.contains("bind") || options.contains("rbind") || type == "none" && options.contains("bind") }
    /// The value of an option like `subvol=@root`, if given.
    public func option(_ name: String) -> String? {
        for o in options where o.hasPrefix(name + "=") { return String(o.dropFirst(name.count + 1)) }
        return nil
    }
}

/// Parser for fstab(5): whitespace-separated fields, `#` comments, octal escapes (`\040`).
public enum Fstab {
    /// Lines longer than this are rejected (a guard against garbage files).
    public static let maximumLineLength = 64 * 1024

    public static func parse(_ bytes: [UInt8], file: String = "/etc/fstab") -> (entries: [FstabEntry], warnings: [ConfigWarning]) {
        var entries: [FstabEntry] = []
        var warnings: [ConfigWarning] = []
        var lineNumber = 0
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if rawLine.count > maximumLineLength {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "line of \(rawLine.count) bytes ignored (over \(maximumLineLength))"))
                continue
            }
            if rawLine.contains(0) {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "line with NUL bytes ignored"))
                continue
            }
            let text = String(decoding: rawLine, as: UTF8.self)
            let trimmed = text.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map { unescapeOctal(String($0)) }
            guard fields.count >= 2 else {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "fewer than 2 fields; ignored"))
                continue
            }
            let type = fields.count > 2 ? fields[2] : "auto"
            let options = fields.count > 3 ? fields[3].split(separator: ",").map(String.init) : ["defaults"]
            if fields.count > 6 {
                warnings.append(ConfigWarning(file: file, line: lineNumber, message: "more than 6 fields; extra fields ignored"))
            }
            entries.append(FstabEntry(spec: fields[0], mountPoint: fields[1], type: type, options: options, line: lineNumber))
        }
        return (entries, warnings)
    }

    /// Decodes `\NNN` octal escapes as getmntent does (`\040` is a space).
    public static func unescapeOctal(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count,
               b[(i + 1)...(i + 3)].allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) {
                let v = (Int(b[i + 1] - 0x30) << 6) | (Int(b[i + 2] - 0x30) << 3) | Int(b[i + 3] - 0x30)
                if v <= 0xFF {
                    out.append(UInt8(v))
                    i += 4
                    continue
                }
            }
            out.append(b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// How a mount names its source device.
public enum DeviceSpec: Sendable, Equatable, CustomStringConvertible {
    case uuid(String)
    case label(String)
    case partUUID(String)
    case partLabel(String)
    /// A kernel device name such as /dev/sda3, /dev/mmcblk0p2, /dev/nvme0n1p4, /dev/vda1.
    case devicePath(String)
    /// /dev/root or rootfs: the root filesystem itself.
    case root
    /// Anything else (a path for bind mounts, "none", "tmpfs", "overlay", ...).
    case other(String)

    public init(parsing raw: String) {
        let s = raw.trimmingQuotes()
        func after(_ prefix: String) -> String? {
            s.hasPrefix(prefix) ? String(s.dropFirst(prefix.count)) : nil
        }
        if let v = after("UUID=") { self = .uuid(v) }
        else if let v = after("LABEL=") { self = .label(v) }
        else if let v = after("PARTUUID=") { self = .partUUID(v) }
        else if let v = after("PARTLABEL=") { self = .partLabel(v) }
        else if let v = after("/dev/disk/by-uuid/") { self = .uuid(v) }
        else if let v = after("/dev/disk/by-label/") { self = .label(DeviceSpec.unescapeUdev(v)) }
        else if let v = after("/dev/disk/by-partuuid/") { self = .partUUID(v) }
        else if let v = after("/dev/disk/by-partlabel/") { self = .partLabel(DeviceSpec.unescapeUdev(v)) }
        else if s == "/dev/root" || s == "rootfs" { self = .root }
        else if s.hasPrefix("/dev/") { self = .devicePath(s) }
        else { self = .other(s) }
    }

    /// udev writes unsafe label characters as `\xNN` in /dev/disk/by-label names.
    static func unescapeUdev(_ s: String) -> String {
        SystemdName.decodeHexEscapes(s)
    }

    /// The partition number named by a kernel device path (`/dev/sda3` -> 3,
    /// `/dev/mmcblk0p2` -> 2, `/dev/nvme0n1p4` -> 4), nil for a whole disk or other paths.
    public var partitionNumber: Int? {
        guard case .devicePath(let path) = self else { return nil }
        let name = path.dropFirst("/dev/".count)
        let digits = name.reversed().prefix { $0.isNumber }
        guard !digits.isEmpty, let n = Int(String(digits.reversed())) else { return nil }
        let stem = name.dropLast(digits.count)
        if stem.hasPrefix("mmcblk") || stem.hasPrefix("nvme") || stem.hasPrefix("loop") || stem.hasPrefix("md") {
            // These need a "p" before the partition number; without it the digits name the disk.
            return stem.hasSuffix("p") && stem.dropLast().last?.isNumber == true ? n : nil
        }
        if stem.hasPrefix("sd") || stem.hasPrefix("vd") || stem.hasPrefix("hd") || stem.hasPrefix("xvd") {
            return stem.dropFirst(stem.hasPrefix("xvd") ? 3 : 2).allSatisfy({ $0.isLetter }) ? n : nil
        }
        return nil
    }

    public var description: String {
        switch self {
        case .uuid(let v): return "UUID=\(v)"
        case .label(let v): return "LABEL=\(v)"
        case .partUUID(let v): return "PARTUUID=\(v)"
        case .partLabel(let v): return "PARTLABEL=\(v)"
        case .devicePath(let v): return v
        case .root: return "/dev/root"
        case .other(let v): return v
        }
    }
}

extension String {
    func trimmingQuotes() -> String {
        if count >= 2, (hasPrefix("\"") && hasSuffix("\"")) || (hasPrefix("'") && hasSuffix("'")) {
            return String(dropFirst().dropLast())
        }
        return self
    }
}
