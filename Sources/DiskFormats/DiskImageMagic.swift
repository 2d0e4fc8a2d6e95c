import DiskImage

/// The disk image containers and compressed wrappers fwassemble opens, told apart by the magic
/// numbers at the start of the file: the one table that `openDiskImage` (which opens them) and
/// `sniffDiskImage` (which only looks) both read.
public enum DiskImageMagic: String, Sendable, CaseIterable {
    case qcow2, vmdkSparse, vmdkDescriptor, vhdx, vdi, vhd
    case xz, gzip, zstd, zip, tar, bzip2

    /// Every magic, in the order they are tried (the first match wins): the containers, then the
    /// wrappers. A VHD is also recognised by its footer at the end (`vhdCookie`), which is tried
    /// after the containers and before the wrappers.
    public static let table: [(magic: DiskImageMagic, offset: Int, bytes: [UInt8])] = [
        // QEMU qcow2 header: magic "QFI\xfb" at 0.
        (.qcow2, 0, [0x51, 0x46, 0x49, 0xFB]),
        // VMDK hosted sparse extent header: magic "KDMV" (0x564d444b little-endian) at 0.
        (.vmdkSparse, 0, Array("KDMV".utf8)),
        // VMDK text descriptor: its first comment line (both spellings are in the wild).
        (.vmdkDescriptor, 0, Array("# Disk DescriptorFile".utf8)),
        (.vmdkDescriptor, 0, Array("# Disk Descriptor File".utf8)),
        // VHDX file type identifier: signature "vhdxfile" at 0.
        (.vhdx, 0, Array("vhdxfile".utf8)),
        // VirtualBox VDI pre-header: signature 0xBEDA107F (little-endian) at 0x40.
        (.vdi, 0x40, [0x7F, 0x10, 0xDA, 0xBE]),
        // VHD (Virtual PC) footer copy at 0 of a dynamic disk: cookie "conectix".
        (.vhd, 0, vhdCookie),
        // xz stream header: FD 37 7A 58 5A 00.
        (.xz, 0, [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]),
        // gzip member header: ID1 ID2 = 1F 8B (RFC 1952).
        (.gzip, 0, [0x1F, 0x8B]),
        // zstd frame: magic 0xFD2FB528 little-endian (RFC 8878).
        (.zstd, 0, [0x28, 0xB5, 0x2F, 0xFD]),
        // zip local file header signature "PK\x03\x04".
        (.zip, 0, [0x50, 0x4B, 0x03, 0x04]),
        // POSIX ustar header: magic "ustar" at 257 (an OVA is a tar).
        (.tar, 257, Array("ustar".utf8)),
        // bzip2 stream header "BZh" (refused with a hint).
        (.bzip2, 0, Array("BZh".utf8)),
    ]

    /// The VHD footer's cookie, in the last 512 bytes of every VHD (and at 0 of a dynamic one).
    public static let vhdCookie = Array("conectix".utf8)

    /// The first magic of `table` found in `head` (the first bytes of a file, at least 512 for
    /// the tar magic), nil for none. The VHD footer at the end of a file is `hasVHDFooter`'s.
    public static func detect(_ head: [UInt8]) -> DiskImageMagic? {
        for (magic, offset, bytes) in table
        where head.count >= offset + bytes.count && head[offset..<(offset + bytes.count)].elementsEqual(bytes) {
            return magic
        }
        return nil
    }

    /// Whether the last 512 bytes of `source` are a VHD footer (a fixed VHD has no header).
    public static func hasVHDFooter(_ source: any ByteSource) throws -> Bool {
        guard source.size >= 512, source.size % 512 == 0 else { return false }
        return try source.bytes(at: source.size - 512, count: vhdCookie.count) == vhdCookie
    }

    /// The container format's name as qemu-img and `diskImageFormat(of:)` call it ("qcow2",
    /// "vmdk", "vhdx", "vdi", "vpc"); nil for a compressed or archived wrapper.
    public var container: String? {
        switch self {
        case .qcow2: "qcow2"
        case .vmdkSparse, .vmdkDescriptor: "vmdk"
        case .vhdx: "vhdx"
        case .vdi: "vdi"
        case .vhd: "vpc"
        case .xz, .gzip, .zstd, .zip, .tar, .bzip2: nil
        }
    }
}
