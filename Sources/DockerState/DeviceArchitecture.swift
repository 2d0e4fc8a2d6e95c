import Assembly
import DiskImage
import FileSystems

/// The device's CPU architecture as OCI platforms name it (Go's GOARCH and, for 32-bit ARM, the
/// variant), read from the ELF file of the first of `probes` the booted namespace has (symlinks
/// followed): the manifest of an image index the device would run is the one for this platform,
/// chosen as containerd chooses it (`preference(of:)`).
public struct DeviceArchitecture: Sendable, Equatable {
    /// `amd64`, `arm64`, `arm`, `386`, `riscv64`, `ppc64le`, `s390x`, `mips64le`...
    public var name: String
    /// For `arm`: `v5`...`v8` from the ELF file's `Tag_CPU_arch` build attribute; nil when the
    /// file has none (containerd then assumes `v7`) and for the other architectures.
    public var variant: String?
    /// Where it was read (`/bin/sh`).
    public var source: String

    public init(name: String, variant: String? = nil, source: String) {
        self.name = name
        self.variant = variant
        self.source = source
    }

    static let probes = ["/bin/sh", "/usr/bin/env", "/bin/busybox", "/sbin/init"]
    /// How far into a probe its section headers and ARM attributes are looked for.
    static let maximumProbeOffset: UInt64 = 64 << 20

    public static func detect(in namespace: NamespaceFileSystem) -> DeviceArchitecture? {
        for path in probes {
            guard let (layer, meta) = namespace.locate(NamespacePath(path)), meta.type == .regular else { continue }
            let open = { try layer.reader.openFile(layer.inode) }
            let header: [UInt8]
            do {
                header = try open().readPrefix(52)
            } catch {
                continue   // unreadable here: the next probe, as for a missing one
            }
            guard let name = fromELF(header) else { continue }
            // A missing or damaged attribute section leaves the variant unknown, as a binary
            // built without attributes would.
            let variant = name == "arm" ? (try? armVariant(header: header, size: meta.size, open: open)) ?? nil : nil
            return DeviceArchitecture(name: name, variant: variant, source: path)
        }
        return nil
    }

    /// GOARCH of an ELF header (e_ident: magic, EI_CLASS at 4, EI_DATA at 5; e_machine at 18 in
    /// the file's byte order), nil when it is not ELF or the machine is not one OCI names.
    static func fromELF(_ h: [UInt8]) -> String? {
        guard h.count >= 20, h[0] == 0x7F, h[1] == 0x45, h[2] == 0x4C, h[3] == 0x46 else { return nil }
        let is64 = h[4] == 2, little = h[5] == 1
        guard let machine = ByteCursor(h, context: "ELF header").integerIfPresent(at: 18, endianness: little ? .little : .big, as: UInt16.self) else { return nil }
        switch machine {
        case 0x3E: return "amd64"
        case 0x03: return "386"
        case 0xB7: return "arm64"
        case 0x28: return "arm"
        case 0xF3: return is64 ? "riscv64" : nil
        case 0x15: return little ? "ppc64le" : "ppc64"
        case 0x16: return "s390x"
        case 0x08: return (is64 ? "mips64" : "mips") + (little ? "le" : "")
        case 0x102: return is64 ? "loong64" : nil
        default: return nil
        }
    }

    /// The ARM variant of a 32-bit ELF file from its `.ARM.attributes` section (SHT_ARM_ATTRIBUTES):
    /// the "aeabi" file attributes' `Tag_CPU_arch` (ARM IHI 0045) as the OCI variant. `open`
    /// opens the file again at its start (file contents read forward only); nil when the file
    /// has no such section or tag.
    static func armVariant(header: [UInt8], size: UInt64, open: () throws -> any FileContents) throws -> String? {
        let h = ByteCursor(header, context: "ELF header")
        let order: Endianness = header[5] == 1 ? .little : .big
        // ELF32: e_shoff at 0x20, e_shentsize at 0x2E, e_shnum at 0x30; a section header is 40 bytes.
        let tableOffset = UInt64(try h.integer(at: 0x20, endianness: order, as: UInt32.self))
        let entrySize = Int(try h.integer(at: 0x2E, endianness: order, as: UInt16.self))
        let count = Int(try h.integer(at: 0x30, endianness: order, as: UInt16.self))
        guard header[4] == 1, entrySize >= 40, count > 0, tableOffset + UInt64(entrySize * count) <= min(size, maximumProbeOffset) else {
            return nil
        }
        let table = ByteCursor(try read(open, at: tableOffset, count: entrySize * count), context: "ELF section headers")
        for i in 0..<count {
            let base = i * entrySize
            // sh_type at +4 (SHT_ARM_ATTRIBUTES), sh_offset at +16, sh_size at +20.
            guard try table.integer(at: base + 4, endianness: order, as: UInt32.self) == 0x7000_0003 else { continue }
            let offset = UInt64(try table.integer(at: base + 16, endianness: order, as: UInt32.self))
            let length = Int(try table.integer(at: base + 20, endianness: order, as: UInt32.self))
            guard length <= 1 << 16, offset + UInt64(length) <= min(size, maximumProbeOffset) else { return nil }
            return try cpuArchitecture(inAttributes: try read(open, at: offset, count: length), order: order).flatMap(variant(cpuArchitecture:))
        }
        return nil
    }

    /// `count` bytes at `offset` of a file that reads forward only.
    private static func read(_ open: () throws -> any FileContents, at offset: UInt64, count: Int) throws -> [UInt8] {
        let file = try open()
        var skipped: UInt64 = 0
        while skipped < offset {
            let chunk = try file.readPrefix(Int(min(offset - skipped, 1 << 20)))
            guard !chunk.isEmpty else { break }
            skipped += UInt64(chunk.count)
        }
        let bytes = try file.readPrefix(count)
        guard skipped == offset, bytes.count == count else { throw FWError.corrupt("ELF file ends before byte \(offset + UInt64(count))") }
        return bytes
    }

    /// `Tag_CPU_arch` (6) of the "aeabi" subsection's file attributes (`Tag_File`, 1), nil when
    /// absent. Format: "A", then subsections (length u32, vendor NUL-terminated, then
    /// tag u8 + length u32 + attributes: ULEB128 tag, then a ULEB128 or NUL-terminated value).
    static func cpuArchitecture(inAttributes bytes: [UInt8], order: Endianness) throws -> UInt64? {
        var c = ByteCursor(bytes, context: "ARM attributes")
        guard try c.readU8() == UInt8(ascii: "A") else { return nil }
        while c.remaining > 0 {
            let start = c.position
            let length = Int(try c.integer(at: start, endianness: order, as: UInt32.self))
            guard length >= 5, length <= bytes.count - start else { return nil }
            let end = start + length
            c.position = start + 4
            guard try c.readCString() == Array("aeabi".utf8) else { c.position = end; continue }
            while c.position < end {
                let tagStart = c.position
                let tag = try c.readU8()
                let size = Int(try c.integer(at: c.position, endianness: order, as: UInt32.self))
                guard size >= 5, size <= end - tagStart else { return nil }
                guard tag == 1 else { c.position = tagStart + size; continue }   // section/symbol attributes
                c.position += 4
                let attributes = ByteCursor(Array(bytes[c.position..<(tagStart + size)]), context: "ARM file attributes")
                return try fileAttribute(6, in: attributes)
            }
            c.position = end
        }
        return nil
    }

    /// The ULEB128 value of `wanted` among file attributes. Value kinds (ARM IHI 0045 §2.2.6):
    /// Tag_CPU_raw_name (4), Tag_CPU_name (5) and Tag_conformance (67) are strings,
    /// Tag_compatibility (32) a number then a string, other tags below 32 numbers, and above 32
    /// numbers when even, strings when odd.
    private static func fileAttribute(_ wanted: UInt64, in attributes: ByteCursor) throws -> UInt64? {
        var c = attributes
        while c.remaining > 0 {
            let tag = try c.readULEB128()
            if tag == 4 || tag == 5 || tag == 67 || (tag > 32 && tag % 2 == 1) {
                _ = try c.readCString()
            } else if tag == 32 {
                _ = try c.readULEB128()
                _ = try c.readCString()
            } else {
                let value = try c.readULEB128()
                if tag == wanted { return value }
            }
        }
        return nil
    }

    /// The OCI variant of a `Tag_CPU_arch` value: v5T...v5TEJ v5, v6...v6K and the v6-M profiles
    /// v6, v7 and v7E-M v7, v8-A and later v8; nil for v4T and older (no OCI variant).
    static func variant(cpuArchitecture value: UInt64) -> String? {
        switch value {
        case 3...5: "v5"
        case 6...9, 11, 12: "v6"
        case 10, 13: "v7"
        case 14...: "v8"
        default: nil
        }
    }

    /// How much containerd (and so Docker and ctr) prefers a platform of an image index on this
    /// device: 0 for the device's own, higher for the compatible ones it falls back to, nil for
    /// one it cannot run (`platforms.Only`: the normalized platform, then for amd64 386, for
    /// arm/vN the lower variants down to v5, for arm64 arm/v8 and below). Variants are
    /// normalized as containerd does: arm without one is v7, arm64's v8 is none.
    public func preference(architecture: String?, variant: String?, os: String?) -> Int? {
        guard (os ?? "linux") == "linux", let architecture else { return nil }
        let wanted = Self.normalized(architecture, variant)
        return compatible.firstIndex { $0 == wanted }
    }

    /// The platforms this device runs, most preferred first.
    var compatible: [Platform] {
        let own = Self.normalized(name, variant)
        switch own.architecture {
        case "amd64": return [own, Platform(architecture: "386", variant: nil)]
        case "arm": return [own] + Self.lowerArmVariants(below: own.variant)
        case "arm64": return [own, Platform(architecture: "arm", variant: "v8")] + Self.lowerArmVariants(below: "v8")
        default: return [own]
        }
    }

    struct Platform: Equatable {
        var architecture: String
        var variant: String?
    }

    private static func lowerArmVariants(below variant: String?) -> [Platform] {
        guard let v = variant.flatMap({ Int($0.dropFirst()) }), v > 5 else { return [] }
        return (5..<v).reversed().map { Platform(architecture: "arm", variant: "v\($0)") }
    }

    /// containerd's `platforms.Normalize` for the variant: arm's "" is v7 and "7" is v7, arm64's
    /// v8 (and "8", "v8.0") is none.
    static func normalized(_ architecture: String, _ variant: String?) -> Platform {
        var v = variant.flatMap { $0.isEmpty ? nil : $0 }
        switch architecture {
        case "arm":
            if let digits = v, let n = Int(digits), (5...8).contains(n) { v = "v\(n)" }
            if v == nil { v = "v7" }
        case "arm64":
            if ["8", "v8", "v8.0"].contains(v ?? "") { v = nil }
        default:
            break
        }
        return Platform(architecture: architecture, variant: v)
    }

    /// `arm/v7`, `amd64`: the platform for messages.
    public var display: String { variant.map { "\(name)/\($0)" } ?? name }
}
