import DiskImage
import FileSystems

/// One member of a tar archive, before encoding: what `TarWriter` writes.
@dynamicMemberLookup
public struct TarEntry: Sendable, Equatable {
    /// The kind of member and what only that kind carries.
    public enum Kind: Sendable, Equatable {
        case regular
        case directory
        /// Raw target bytes.
        case symlink(target: [UInt8])
        /// Another member of the same archive, by its path relative to the root (no "./").
        case hardlink(target: [UInt8])
        case characterDevice(DeviceNumber)
        case blockDevice(DeviceNumber)
        case fifo
    }

    /// Path relative to the root, raw bytes, without "./" ("" for the root, "etc/fstab").
    public var path: [UInt8]
    public var kind: Kind
    /// Permission bits (0o7777), owner, times and xattrs, read and written as the entry's own
    /// (`entry.uid`); the size is the content length (regular files only; 0 otherwise).
    public var attributes: FileAttributes

    public init(path: [UInt8], kind: Kind, permissions: UInt16, uid: UInt32 = 0, gid: UInt32 = 0, size: UInt64 = 0,
                mtime: Timestamp = Timestamp(seconds: 0), atime: Timestamp? = nil, ctime: Timestamp? = nil,
                xattrs: [ExtendedAttribute] = []) {
        self.path = path
        self.kind = kind
        attributes = FileAttributes(permissions: permissions, uid: uid, gid: gid, size: kind == .regular ? size : 0,
                                    mtime: mtime, atime: atime, ctime: ctime, xattrs: xattrs)
    }

    /// An attribute as the entry's own: `entry.mtime`.
    @inlinable public subscript<T>(dynamicMember field: WritableKeyPath<FileAttributes, T>) -> T {
        get { attributes[keyPath: field] }
        set { attributes[keyPath: field] = newValue }
    }

    /// The member for a walked filesystem entry. Sockets have no tar representation: this throws
    /// `.unsupported` and the caller skips and reports them.
    public init(path: [UInt8], metadata m: Metadata) throws {
        // The last line of defence against a corrupt name: every member stays below "./".
        guard Self.isNormalized(path) else {
            throw FWError(.corrupt, "path \(String(decoding: path, as: UTF8.self).debugDescription) is not a normalised relative path; skipped")
        }
        let kind: Kind
        switch m.type {
        case .regular: kind = .regular
        case .directory: kind = .directory
        case .symlink:
            guard let target = m.symlinkTarget else {
                throw FWError(.corrupt, "symlink without a target")
            }
            kind = .symlink(target: target)
        case .characterDevice:
            guard let dev = m.device else { throw FWError(.corrupt, "character device without device numbers") }
            kind = .characterDevice(dev)
        case .blockDevice:
            guard let dev = m.device else { throw FWError(.corrupt, "block device without device numbers") }
            kind = .blockDevice(dev)
        case .fifo: kind = .fifo
        case .socket:
            throw FWError(.unsupported, "socket not representable in tar; skipped")
        }
        self.init(path: path, kind: kind, permissions: m.permissions & 0o7777, uid: m.uid, gid: m.gid,
                  size: m.size, mtime: m.mtime, atime: m.atime, ctime: m.ctime, xattrs: m.xattrs)
    }

    /// True for "" (the root) and for relative paths whose "/"-separated components are all
    /// names (`NamespacePath.Component.isName`: non-empty, not "." or "..", free of NUL): such a
    /// member cannot land outside the extraction directory.
    public static func isNormalized(_ path: [UInt8]) -> Bool {
        path.isEmpty || path.split(separator: 0x2F, omittingEmptySubsequences: false).allSatisfy(NamespacePath.Component.isName)
    }

    /// "/etc/fstab", for messages.
    public var displayPath: String { "/" + String(decoding: path, as: UTF8.self) }
}
