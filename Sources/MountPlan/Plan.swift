import FileSystems

/// What the planner knows about one partition of the disk (filled in by the facade from the
/// partition table and libblkid probing).
public struct PlanPartition: Sendable, Equatable {
    /// The index `fwassemble inspect` prints (Linux numbering: logical partitions from 5).
    public var index: Int
    /// GPT partition name (PARTLABEL), nil on MBR.
    public var name: String?
    /// PARTUUID: the GPT unique GUID, or `<mbr signature>-<NN>`.
    public var partUUID: String?
    /// GPT type GUID (lowercase) or MBR type as "0x83".
    public var typeID: String?
    /// Filesystem type from probing ("ext4", "squashfs", "erofs", "vfat"), nil when none.
    public var fsType: String?
    public var label: String?
    public var fsUUID: String?
    public var size: UInt64

    public init(index: Int, name: String? = nil, partUUID: String? = nil, typeID: String? = nil, fsType: String? = nil,
                label: String? = nil, fsUUID: String? = nil, size: UInt64 = 0) {
        self.index = index
        self.name = name
        self.partUUID = partUUID
        self.typeID = typeID
        self.fsType = fsType
        self.label = label
        self.fsUUID = fsUUID
        self.size = size
    }

    /// "partition 3 (hassos-system0)" for messages.
    public var displayName: String {
        if let n = name ?? label { return "partition \(index) (\(n))" }
        return "partition \(index)"
    }
}

/// The disk as the planner sees it: partitions and a way to read their filesystems and raw bytes.
public protocol PlanningDisk: AnyObject {
    var partitions: [PlanPartition] { get }
    /// The filesystem of a partition, nil when it has none fwassemble can read. Readers may be
    /// cached by the implementation.
    func fileSystem(partition index: Int) throws -> (any FileSystemReader)?
    /// Up to `count` raw bytes from the start of a partition (bootloader environments).
    func rawBytes(partition index: Int, count: Int) throws -> [UInt8]
    /// The filesystem starting `offset` bytes into a partition (OpenWrt's rootfs_data after the
    /// squashfs), nil when there is none. The default finds none.
    func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)?
}

extension PlanningDisk {
    public func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)? {
        offset == 0 ? try fileSystem(partition: index) : nil
    }
}

/// How the root filesystem was chosen.
public struct RootChoice: Sendable, Equatable, Codable {
    public var partition: Int
    public var filesystem: String
    public var reason: String

    public init(partition: Int, filesystem: String, reason: String) {
        self.partition = partition
        self.filesystem = filesystem
        self.reason = reason
    }
}

/// One mount the booted device performs, in the order it is applied.
public struct PlannedMount: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case partition, bind, overlay }

    public var `where`: String
    public var kind: Kind
    /// For `.partition`.
    public var partition: Int?
    /// For `.partition`: where the filesystem starts inside the partition, in bytes, when not
    /// at its start (OpenWrt's rootfs_data after the squashfs). JSON key "offset", absent when 0.
    public var offset: UInt64?
    public var fstype: String?
    public var options: String
    /// For `.bind`: the source path in the namespace.
    public var what: String?
    /// For `.overlay`: lower directories (top first) and upper directory, as namespace paths.
    public var lower: [String]?
    public var upper: String?
    /// The file and line or unit that declared it.
    public var declaredBy: String

    enum CodingKeys: String, CodingKey {
        case `where`, kind, partition, offset, fstype, options, what, lower, upper
        case declaredBy = "declared_by"
    }

    public init(where: String, kind: Kind, partition: Int? = nil, offset: UInt64? = nil, fstype: String? = nil, options: String = "",
                what: String? = nil, lower: [String]? = nil, upper: String? = nil, declaredBy: String) {
        self.where = `where`
        self.kind = kind
        self.partition = partition
        self.offset = offset
        self.fstype = fstype
        self.options = options
        self.what = what
        self.lower = lower
        self.upper = upper
        self.declaredBy = declaredBy
    }
}

/// A mount the device declares but that fwassemble does not apply, and why.
public struct SkippedMount: Sendable, Equatable, Codable {
    public var `where`: String
    public var reason: String
    public var declaredBy: String?

    enum CodingKeys: String, CodingKey {
        case `where`, reason
        case declaredBy = "declared_by"
    }

    public init(where: String, reason: String, declaredBy: String? = nil) {
        self.where = `where`
        self.reason = reason
        self.declaredBy = declaredBy
    }
}

/// The mount plan: the root, the mounts in application order, what was skipped and why.
public struct Plan: Sendable, Equatable, Codable {
    public var root: RootChoice
    public var mounts: [PlannedMount]
    public var skipped: [SkippedMount]
    public var warnings: [String]
    /// Detected firmware profile ("haos", "raspberrypi-os", "generic", ...).
    public var profile: String

    public init(root: RootChoice, mounts: [PlannedMount], skipped: [SkippedMount], warnings: [String], profile: String) {
        self.root = root
        self.mounts = mounts
        self.skipped = skipped
        self.warnings = warnings
        self.profile = profile
    }
}

/// Options for planning.
public struct PlanOptions: Sendable {
    /// `--root N|NAME|LABEL`: overrides every other way of choosing the root.
    public var root: String?

    public init(root: String? = nil) {
        self.root = root
    }
}
