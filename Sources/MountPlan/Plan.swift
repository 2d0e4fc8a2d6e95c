import FileSystems
import PartitionTable

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
    /// The GPT entry's ChromeOS/Flatcar slot bits (priority, tries, successful), nil when unset.
    public var slot: GPTSlotAttributes?

    public init(index: Int, name: String? = nil, partUUID: String? = nil, typeID: String? = nil, fsType: String? = nil,
                label: String? = nil, fsUUID: String? = nil, size: UInt64 = 0, slot: GPTSlotAttributes? = nil) {
        self.index = index
        self.name = name
        self.partUUID = partUUID
        self.typeID = typeID
        self.fsType = fsType
        self.label = label
        self.fsUUID = fsUUID
        self.size = size
        self.slot = slot
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
    /// Up to `count` raw bytes of the whole disk from byte `offset` (a U-Boot environment in the
    /// gap before the first partition, named by `fw_env.config`). The default reads nothing.
    func rawDiskBytes(at offset: UInt64, count: Int) throws -> [UInt8]
    /// The filesystem starting `offset` bytes into a partition (OpenWrt's rootfs_data after the
    /// squashfs), nil when there is none. The default finds none.
    func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)?
    /// Why a partition's filesystem cannot be read, for messages ("reaches past the end of the
    /// image (...)", "holds xfs, which fwassemble does not read"); nil when it can be read or
    /// holds nothing recognised. The default knows no reason.
    func unreadableReason(partition index: Int) -> String?
}

extension PlanningDisk {
    public func unreadableReason(partition index: Int) -> String? { nil }

    public func rawDiskBytes(at offset: UInt64, count: Int) throws -> [UInt8] { [] }

    public func fileSystem(partition index: Int, offset: UInt64) throws -> (any FileSystemReader)? {
        offset == 0 ? try fileSystem(partition: index) : nil
    }

    /// The filesystem of a partition for a question the planner asks about it, nil when it has
    /// none or cannot be opened: the disk reports its own open failures once (the facade's plan
    /// warnings, "partition N: cannot read its filesystem"), so the planner does not repeat them.
    func openedFileSystem(_ index: Int) -> (any FileSystemReader)? {
        (try? fileSystem(partition: index)) ?? nil   // open failures are the disk's to report (above)
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

/// Who declared a mount: a value the planner records and later stages use (`--rehost` masks the
/// unit or comments out the fstab line); `description` is the text JSON and messages show.
public enum MountSource: Sendable, Equatable, CustomStringConvertible {
    /// A line of an fstab file (1-based).
    case fstab(file: String, line: Int)
    /// A systemd unit file, by its path.
    case unit(file: String)
    /// Anything else: the root choice, a firmware profile's own mounts ("OSTree: ...").
    case other(String)

    public var description: String {
        switch self {
        case .fstab(let file, let line): return "\(file):\(line)"
        case .unit(let file): return file
        case .other(let text): return text
        }
    }

    /// The unit's name ("mnt-data.mount"), nil for anything but a unit.
    public var unitName: String? {
        guard case .unit(let file) = self else { return nil }
        return file.split(separator: "/").last.map(String.init)
    }

    /// Reads back a `declared_by` text (a plan decoded from JSON or written by hand): "FILE:N"
    /// of an fstab, an absolute path of a unit file, anything else as it is.
    public init(declaredBy text: String) {
        if let colon = text.lastIndex(of: ":"), text.hasPrefix("/"), text[..<colon].hasSuffix("fstab"),
           let line = Int(text[text.index(after: colon)...]) {
            self = .fstab(file: String(text[..<colon]), line: line)
        } else if text.hasPrefix("/"), !text.contains(" "),
                  [".mount", ".automount", ".service", ".swap"].contains(where: { text.hasSuffix($0) }) {
            self = .unit(file: text)
        } else {
            self = .other(text)
        }
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
    /// The fstab line, unit or profile that declared it.
    public var source: MountSource
    /// `source` as text (JSON "declared_by").
    public var declaredBy: String { source.description }

    enum CodingKeys: String, CodingKey {
        case `where`, kind, partition, offset, fstype, options, what, lower, upper
        case declaredBy = "declared_by"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(where: try c.decode(String.self, forKey: .where), kind: try c.decode(Kind.self, forKey: .kind),
                  partition: try c.decodeIfPresent(Int.self, forKey: .partition), offset: try c.decodeIfPresent(UInt64.self, forKey: .offset),
                  fstype: try c.decodeIfPresent(String.self, forKey: .fstype), options: try c.decode(String.self, forKey: .options),
                  what: try c.decodeIfPresent(String.self, forKey: .what), lower: try c.decodeIfPresent([String].self, forKey: .lower),
                  upper: try c.decodeIfPresent(String.self, forKey: .upper),
                  source: MountSource(declaredBy: try c.decode(String.self, forKey: .declaredBy)))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.where, forKey: .where)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(partition, forKey: .partition)
        try c.encodeIfPresent(offset, forKey: .offset)
        try c.encodeIfPresent(fstype, forKey: .fstype)
        try c.encode(options, forKey: .options)
        try c.encodeIfPresent(what, forKey: .what)
        try c.encodeIfPresent(lower, forKey: .lower)
        try c.encodeIfPresent(upper, forKey: .upper)
        try c.encode(declaredBy, forKey: .declaredBy)
    }

    /// A mount declared by a text (plans written by hand, tests): read as `MountSource(declaredBy:)`.
    public init(where: String, kind: Kind, partition: Int? = nil, offset: UInt64? = nil, fstype: String? = nil, options: String = "",
                what: String? = nil, lower: [String]? = nil, upper: String? = nil, declaredBy: String) {
        self.init(where: `where`, kind: kind, partition: partition, offset: offset, fstype: fstype, options: options,
                  what: what, lower: lower, upper: upper, source: MountSource(declaredBy: declaredBy))
    }

    public init(where: String, kind: Kind, partition: Int? = nil, offset: UInt64? = nil, fstype: String? = nil, options: String = "",
                what: String? = nil, lower: [String]? = nil, upper: String? = nil, source: MountSource) {
        self.where = `where`
        self.kind = kind
        self.partition = partition
        self.offset = offset
        self.fstype = fstype
        self.options = options
        self.what = what
        self.lower = lower
        self.upper = upper
        self.source = source
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
    /// Detected firmware profile ("haos", "raspberrypi-os", "generic", ...): a `FirmwareFamily`
    /// raw value (a string in JSON and for plans made by hand).
    public var profile: String

    /// The profile as a family, nil for a name fwassemble does not know.
    public var family: FirmwareFamily? { FirmwareFamily(rawValue: profile) }

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
    /// Read ext3/ext4 filesystems that need recovery with their journal replayed, as the
    /// kernel mounts them (default); false (`--no-replay`) reads the on-disk state.
    public var replayJournal: Bool

    public init(root: String? = nil, replayJournal: Bool = true) {
        self.root = root
        self.replayJournal = replayJournal
    }
}
