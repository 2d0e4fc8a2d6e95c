import DiskImage

/// The kind of a filesystem entry.
public enum FileType: String, Sendable, Equatable {
    case regular, directory, symlink, characterDevice, blockDevice, fifo, socket
}

/// A point in time as a filesystem stores it: seconds since the epoch plus nanoseconds.
public struct Timestamp: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    public var description: String {
        nanoseconds == 0 ? "\(seconds)" : "\(seconds).\(String(nanoseconds + 1_000_000_000).dropFirst())"
    }
}

/// One extended attribute: full name with namespace prefix ("security.capability",
/// "trusted.overlay.opaque", "system.posix_acl_access") and its raw value.
public struct ExtendedAttribute: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }

    /// The attribute as getxattr(2) returns it in the initial user namespace, where fwassemble's
    /// archive is unpacked. Only file capabilities differ from what is stored
    /// (`cap_inode_getsecurity`): a version 3 value (`vfs_ns_cap_data`, 24 bytes, with the
    /// namespace's root uid) whose root uid is 0 comes back as version 2 (`vfs_cap_data`, 20
    /// bytes: the revision, the effective flag and the same capability sets).
    public var asReadBack: ExtendedAttribute {
        guard name == "security.capability", value.count == 24, value[3] == 0x03, value[20..<24].allSatisfy({ $0 == 0 }) else {
            return self
        }
        // magic_etc (little-endian u32): revision in the top byte, VFS_CAP_FLAGS_EFFECTIVE in bit 0.
        let magic: [UInt8] = [value[0] & 0x01, 0, 0, 0x02]
        return ExtendedAttribute(name: name, value: magic + value[4..<20])
    }
}

/// The fields of `Metadata` that depend on an entry's type, as stat(2) shows them: a symlink's
/// target (read only for a symlink), a device's numbers (only for a device) and a size of 0 for
/// a device, FIFO or socket, whatever its inode stores.
public struct TypedFields {
    public var size: UInt64
    public var symlinkTarget: [UInt8]?
    public var device: DeviceNumber?

    /// The fields of an entry of type `type` whose inode stores `storedSize`; `symlinkTarget` and
    /// `device` read what only a symlink or a device has.
    public init(_ type: FileType, storedSize: UInt64, symlinkTarget: () throws -> [UInt8],
                device: () throws -> DeviceNumber) rethrows {
        size = storedSize
        switch type {
        case .symlink:
            self.symlinkTarget = try symlinkTarget()
        case .characterDevice, .blockDevice:
            self.device = try device()
            size = 0
        case .fifo, .socket:
            size = 0
        case .regular, .directory:
            break
        }
    }
}

/// Device numbers of a character or block device.
public struct DeviceNumber: Sendable, Equatable {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// Splits a Linux `dev_t` as the kernel encodes it (new_decode_dev / huge encoding).
    public init(linux dev: UInt64) {
        major = UInt32(((dev >> 8) & 0xFFF) | ((dev >> 32) & ~UInt64(0xFFF)))
        minor = UInt32((dev & 0xFF) | ((dev >> 12) & ~UInt64(0xFF)))
    }
}

/// What an inode and the tar member written for it share: permission bits, owner, size, times
/// and extended attributes. `Metadata` and `TarEntry` each hold one, and read and write its
/// fields as their own (`metadata.uid`, `entry.mtime`).
public struct FileAttributes: Sendable, Equatable {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000).
    public var permissions: UInt16
    public var uid: UInt32
    public var gid: UInt32
    /// Length in bytes: as stored for an inode; a tar member's content length (0 unless regular).
    public var size: UInt64
    public var mtime: Timestamp
    /// A tar member carries these only when the writer's options ask for them.
    public var atime: Timestamp?
    public var ctime: Timestamp?
    /// A tar member writes them as PAX `SCHILY.xattr.<name>` records with the raw values.
    public var xattrs: [ExtendedAttribute]

    public init(permissions: UInt16, uid: UInt32 = 0, gid: UInt32 = 0, size: UInt64 = 0,
                mtime: Timestamp = Timestamp(seconds: 0), atime: Timestamp? = nil, ctime: Timestamp? = nil,
                xattrs: [ExtendedAttribute] = []) {
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.atime = atime
        self.ctime = ctime
        self.xattrs = xattrs
    }
}

/// Everything a filesystem records about one inode, exactly as stored: its type, identity and
/// links, and its `attributes` (read as `metadata.permissions`, `metadata.xattrs`, ...; the
/// xattrs sorted by name, each as getxattr(2) returns it: `ExtendedAttribute.asReadBack`).
@dynamicMemberLookup
public struct Metadata: Sendable, Equatable {
    public var type: FileType
    public var attributes: FileAttributes
    /// Number of directory entries naming this inode, as stored (1 where the format keeps none).
    public var linkCount: UInt32
    /// Identity inside its filesystem: two entries with the same inode are hardlinks.
    public var inode: UInt64
    /// Symlink target, raw bytes (only for `.symlink`).
    public var symlinkTarget: [UInt8]?
    /// Only for character and block devices.
    public var device: DeviceNumber?
    /// Why the xattrs could not be read, when the rest of the inode could (a damaged xattr block,
    /// which the kernel meets only when asked for the xattrs): `xattrs` is then empty, and the
    /// walk reports this for the entry's path while keeping the entry.
    public var unreadableXattrs: FWError?

    public init(type: FileType, permissions: UInt16, uid: UInt32, gid: UInt32, size: UInt64,
                mtime: Timestamp, atime: Timestamp? = nil, ctime: Timestamp? = nil,
                linkCount: UInt32 = 1, inode: UInt64, symlinkTarget: [UInt8]? = nil,
                device: DeviceNumber? = nil, xattrs: [ExtendedAttribute] = []) {
        self.type = type
        attributes = FileAttributes(permissions: permissions, uid: uid, gid: gid, size: size, mtime: mtime, atime: atime,
                                    ctime: ctime, xattrs: xattrs.map(\.asReadBack).sorted { $0.name < $1.name })
        self.linkCount = linkCount
        self.inode = inode
        self.symlinkTarget = symlinkTarget
        self.device = device
    }

    /// An attribute as the inode's own: `metadata.uid`.
    @inlinable public subscript<T>(dynamicMember field: WritableKeyPath<FileAttributes, T>) -> T {
        get { attributes[keyPath: field] }
        set { attributes[keyPath: field] = newValue }
    }

    /// The POSIX `st_mode`: file type bits plus permissions.
    public var mode: UInt32 {
        let typeBits: UInt32
        switch type {
        case .regular: typeBits = 0o100000
        case .directory: typeBits = 0o040000
        case .symlink: typeBits = 0o120000
        case .characterDevice: typeBits = 0o020000
        case .blockDevice: typeBits = 0o060000
        case .fifo: typeBits = 0o010000
        case .socket: typeBits = 0o140000
        }
        return typeBits | UInt32(attributes.permissions & 0o7777)
    }

    /// Type from POSIX `st_mode` type bits (`S_IFMT`), nil if unknown.
    public static func fileType(mode: UInt32) -> FileType? {
        switch mode & 0o170000 {
        case 0o100000: return .regular
        case 0o040000: return .directory
        case 0o120000: return .symlink
        case 0o020000: return .characterDevice
        case 0o060000: return .blockDevice
        case 0o010000: return .fifo
        case 0o140000: return .socket
        default: return nil
        }
    }

    /// The value of an extended attribute, if present.
    public func xattr(_ name: String) -> [UInt8]? {
        attributes.xattrs.first { $0.name == name }?.value
    }
}

/// A name in a directory and the inode it points to.
public struct DirectoryEntry: Sendable, Equatable {
    /// Raw name bytes (not necessarily UTF-8), never containing "/" or NUL, never "." or "..".
    public var name: [UInt8]
    public var inode: UInt64

    public init(name: [UInt8], inode: UInt64) {
        self.name = name
        self.inode = inode
    }
}
