import Assembly
import DiskImage
import FileSystems
import Foundation

/// One entry as `ls --json` and `find --json` print it (one object per line): `name` (ls) or
/// `path` (find), `type` (regular, directory, symlink, characterDevice, blockDevice, fifo,
/// socket), `mode` (permission bits with setuid/setgid/sticky), `uid`, `gid`, `size`, `mtime`
/// (seconds) and `mtime_ns`, `link` (a symlink's target), `device` ([major, minor]) and, in a
/// walk, `hardlink` (the first path of a file met again).
public struct EntryLine: Encodable, Sendable, Equatable {
    public var name: String?
    public var path: String?
    public var type: String
    public var mode: UInt16
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var mtime: Int64
    public var mtimeNs: UInt32
    public var link: String?
    public var device: [UInt32]?
    public var hardlink: String?

    /// `entry` named by its last component (`ls`) or by its path (`find`).
    public init(_ entry: AssembledEntry, byPath: Bool) {
        let m = entry.metadata
        if byPath { path = entry.path } else { name = entry.name }
        type = m.type.rawValue
        mode = m.permissions & 0o7777
        (uid, gid, size) = (m.uid, m.gid, m.size)
        (mtime, mtimeNs) = (m.mtime.seconds, m.mtime.nanoseconds)
        link = m.symlinkTarget.map { String(decoding: $0, as: UTF8.self) }
        device = m.device.map { [$0.major, $0.minor] }
        hardlink = byPath ? entry.hardlinkTarget : nil
    }

    enum CodingKeys: String, CodingKey {
        case name, path, type, mode, uid, gid, size, mtime, mtimeNs = "mtime_ns", link, device, hardlink
    }

    /// One JSON line (sorted keys).
    public func json() throws -> String { try JSONText.line(self) }
}

/// `stat`: every field of one entry and where it comes from (`stat --json`, the C ABI's and
/// Python's `stat`). `identity` (the filesystem and its inode: `source.filesystem`,
/// `source.inode`) is the hardlink identity: two paths with the same one are one file.
public struct EntryStatus: Encodable, Sendable {
    /// The path as asked, and where it was found (symlinks in the middle resolved).
    public var path: String
    public var resolved: String
    public var metadata: Metadata
    public var source: Provenance

    init(path: String, entry: AssembledEntry, source: Provenance) {
        self.path = path
        self.resolved = entry.path
        self.metadata = entry.metadata
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case path, resolved, type, mode, uid, gid, size, mtime, mtimeNs = "mtime_ns", atime, atimeNs = "atime_ns"
        case ctime, ctimeNs = "ctime_ns", links, inode, link, device, xattrs, source
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let m = metadata
        try c.encode(path, forKey: .path)
        try c.encode(resolved, forKey: .resolved)
        try c.encode(m.type.rawValue, forKey: .type)
        try c.encode(m.permissions & 0o7777, forKey: .mode)
        try c.encode(m.uid, forKey: .uid)
        try c.encode(m.gid, forKey: .gid)
        try c.encode(m.size, forKey: .size)
        try c.encode(m.mtime.seconds, forKey: .mtime)
        try c.encode(m.mtime.nanoseconds, forKey: .mtimeNs)
        try c.encodeIfPresent(m.atime?.seconds, forKey: .atime)
        try c.encodeIfPresent(m.atime?.nanoseconds, forKey: .atimeNs)
        try c.encodeIfPresent(m.ctime?.seconds, forKey: .ctime)
        try c.encodeIfPresent(m.ctime?.nanoseconds, forKey: .ctimeNs)
        try c.encode(m.linkCount, forKey: .links)
        try c.encode(m.inode, forKey: .inode)
        try c.encodeIfPresent(m.symlinkTarget.map { String(decoding: $0, as: UTF8.self) }, forKey: .link)
        try c.encodeIfPresent(m.device.map { [$0.major, $0.minor] }, forKey: .device)
        try c.encode(Dictionary(m.xattrs.map { ($0.name, SHA256.hex($0.value)) }, uniquingKeysWith: { a, _ in a }), forKey: .xattrs)
        try c.encode(source, forKey: .source)
    }

    /// The `stat --json` document.
    public func json() throws -> String { try JSONText.pretty(self) }
}

extension Provenance: Encodable {
    enum CodingKeys: String, CodingKey {
        case mount, mountPoint = "mount_point", origin, filesystem, format, inode, layer, layers
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mount, forKey: .mount)
        try c.encode(mountPoint, forKey: .mountPoint)
        try c.encode(origin, forKey: .origin)
        try c.encodeIfPresent(filesystem, forKey: .filesystem)
        try c.encodeIfPresent(format, forKey: .format)
        try c.encodeIfPresent(inode, forKey: .inode)
        try c.encodeIfPresent(layer, forKey: .layer)
        try c.encodeIfPresent(layers, forKey: .layers)
    }
}

extension Metadata {
    /// As ls(1) shows the type and mode: "drwxr-xr-x", "-rwsr-xr-x", "lrwxrwxrwx".
    public var modeString: String {
        var s = type == .regular ? "-" : String(typeLetter)
        let p = self.permissions
        for (shift, special, letter) in [(6, UInt16(0o4000), Character("s")), (3, 0o2000, "s"), (0, 0o1000, "t")] {
            let bits = (p >> UInt16(shift)) & 7
            s.append(bits & 4 != 0 ? "r" : "-")
            s.append(bits & 2 != 0 ? "w" : "-")
            let x = bits & 1 != 0
            s.append(p & special != 0 ? (x ? letter : Character(letter.uppercased())) : (x ? "x" : "-"))
        }
        return s
    }

    /// find(1)'s `-type` letter: f d l c b p s.
    public var typeLetter: Character {
        switch type {
        case .regular: return "f"
        case .directory: return "d"
        case .symlink: return "l"
        case .characterDevice: return "c"
        case .blockDevice: return "b"
        case .fifo: return "p"
        case .socket: return "s"
        }
    }
}
