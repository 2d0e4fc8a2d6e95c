import Foundation
import PartitionTable

/// What `Disk.inspect()` finds: the image, its partition table and each partition's filesystem.
/// Plain Sendable/Codable values; `json()` gives the `fwassemble inspect --json` contract.
public struct DiskInspection: Sendable, Equatable, Codable {
    public struct Image: Sendable, Equatable, Codable {
        public var path: String
        /// The virtual disk's size (the file's size for a raw image).
        public var size: UInt64
        public var sectorSize: Int
        /// The container format: "raw", "qcow2", "vmdk", "vhdx", "vpc", "vdi", "xz+raw", ...
        public var format: String? = nil
        /// The size of the disk the container holds (equal to `size`).
        public var virtualSize: UInt64? = nil

        enum CodingKeys: String, CodingKey {
            case path, size, sectorSize = "sector_size", format, virtualSize = "virtual_size"
        }
    }

    public struct Table: Sendable, Equatable, Codable {
        /// "gpt", "mbr", "hybrid" or "none".
        public var type: String
        /// GPT disk GUID (lowercase) or MBR signature as 8 lowercase hex digits; nil for "none".
        public var diskID: String?
        public var warnings: [String]
        /// For a hybrid disk, the MBR's entries beside 0xEE (informational: the GPT wins).
        public var hybridMBR: [PartitionInfo]?

        enum CodingKeys: String, CodingKey {
            case type, diskID = "disk_id", warnings, hybridMBR = "hybrid_mbr"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type, forKey: .type)
            try c.encode(diskID, forKey: .diskID)
            try c.encode(warnings, forKey: .warnings)
            try c.encodeIfPresent(hybridMBR, forKey: .hybridMBR)
        }
    }

    public struct Filesystem: Sendable, Equatable, Codable {
        public var type: String
        public var label: String?
        public var uuid: String?
        public var version: String?
        /// ext3/ext4 with RECOVER set in the superblock (a snapshot of a mounted filesystem, an
        /// unclean shutdown): its journal holds changes not yet written home, which extract and
        /// assemble replay unless told `--no-replay`. False for every other filesystem.
        public var needsRecovery: Bool?
        /// btrfs only (JSON key "btrfs", absent for other filesystems): its subvolumes and features.
        public var btrfs: BtrfsDetails?
        /// The features the superblock declares, by mkfs's names (f2fs only: "extra_attr",
        /// "inode_checksum", "compression", ...); nil for other filesystems.
        public var features: [String]?

        enum CodingKeys: String, CodingKey {
            case type, label, uuid, version, needsRecovery = "needs_recovery", btrfs, features
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type, forKey: .type)
            try c.encode(label, forKey: .label)
            try c.encode(uuid, forKey: .uuid)
            try c.encode(version, forKey: .version)
            try c.encode(needsRecovery ?? false, forKey: .needsRecovery)
            try c.encodeIfPresent(btrfs, forKey: .btrfs)
            try c.encodeIfPresent(features, forKey: .features)
        }
    }

    /// What `inspect` reports of a btrfs filesystem.
    public struct BtrfsDetails: Sendable, Equatable, Codable {
        public struct Subvolume: Sendable, Equatable, Codable {
            public var id: UInt64
            /// From the top level ("" for the top level itself, id 5).
            public var path: String
            public var readOnly: Bool
            public var isDefault: Bool

            enum CodingKeys: String, CodingKey {
                case id, path, readOnly = "read_only", isDefault = "default"
            }
        }

        /// Incompatible and read-only compatible features, as `btrfs inspect-internal dump-super` names them.
        public var features: [String]
        /// Metadata checksum algorithm: crc32c, xxhash64, sha256, blake2b.
        public var checksum: String
        /// Whether fwassemble verifies that algorithm on the metadata (all four today).
        public var checksumsVerified: Bool
        /// One device read (this partition, or another given with `--device` or found on the disk).
        public struct Device: Sendable, Equatable, Codable {
            /// The btrfs device id (`devid`).
            public var id: UInt64
            public var name: String
        }

        /// A device given that is not a member, and why.
        public struct IgnoredDevice: Sendable, Equatable, Codable {
            public var name: String
            public var reason: String
        }

        /// Devices of the filesystem (`num_devices`).
        public var devices: UInt64
        /// A log tree (data fsync'd after the last commit: a snapshot of a running device), which
        /// the kernel replays at mount and so does fwassemble (`log_replay`).
        public var logTree: Bool
        /// What became of the log tree (absent without one): `replayed`, `subvolumes` and
        /// `items` replayed, `warnings` (why it was not).
        public var logReplay: LogReplay? = nil

        public struct LogReplay: Sendable, Equatable, Codable {
            public var replayed: Bool
            public var subvolumes: Int
            public var items: Int
            public var warnings: [String]
        }
        public var subvolumes: [Subvolume]
        /// Each superblock copy on the device and what was found there ("ok, generation N" or the problem).
        public var superblocks: [String: String]
        /// The devices read, by id: this partition and the members found (`--device`, the disk's
        /// other btrfs partitions); a device missing here is read from its copies or parity, or
        /// its data is an error naming it.
        public var memberDevices: [Device] = []
        /// Devices given that are not members (another filesystem, an id already present, a
        /// stale generation); absent when none.
        public var ignoredDevices: [IgnoredDevice]? = nil

        enum CodingKeys: String, CodingKey {
            case features, checksum, checksumsVerified = "checksums_verified", devices, logTree = "log_tree", logReplay = "log_replay"
            case subvolumes, superblocks
            case memberDevices = "member_devices", ignoredDevices = "ignored_devices"
        }
    }

    public struct PartitionInfo: Sendable, Equatable, Codable {
        /// Linux partition number.
        public var index: Int
        /// Byte offset and length in the image.
        public var start: UInt64
        public var size: UInt64
        /// GPT type GUID (lowercase), MBR type ("0x0c"), or nil for a whole-disk filesystem.
        public var type: String?
        public var typeName: String?
        /// GPT partition name; nil on MBR.
        public var name: String?
        /// PARTUUID.
        public var uuid: String?
        public var bootable: Bool
        /// GPT attribute bits.
        public var attributes: UInt64?
        /// Bits 48-56 of `attributes` as ChromeOS and Flatcar read them (priority, tries,
        /// successful); absent when those bits are all zero (JSON "slot_attributes").
        public var slotAttributes: GPTSlotAttributes?
        /// An MBR extended partition (container of logical partitions).
        public var extended: Bool
        public var logical: Bool
        /// False when the partition reaches past the end of the image.
        public var withinImage: Bool
        public var filesystem: Filesystem?

        enum CodingKeys: String, CodingKey {
            case index, start, size, type, typeName = "type_name", name, uuid, bootable, attributes,
                 slotAttributes = "slot_attributes", extended, logical, withinImage = "within_image", filesystem
        }

        init(_ p: Partition, kind: PartitionTable.Kind, filesystem fs: FilesystemSignature?) {
            index = p.index
            start = p.start
            size = p.size
            type = kind == .none ? nil : p.type
            typeName = p.typeName
            name = p.name
            uuid = p.uuid
            bootable = p.bootable
            attributes = p.attributes
            slotAttributes = p.slotAttributes
            extended = p.isExtended
            logical = p.isLogical
            withinImage = p.withinImage
            filesystem = fs.map { Filesystem(type: $0.type, label: $0.label, uuid: $0.uuid, version: $0.version) }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(start, forKey: .start)
            try c.encode(size, forKey: .size)
            try c.encode(type, forKey: .type)
            try c.encode(typeName, forKey: .typeName)
            try c.encode(name, forKey: .name)
            try c.encode(uuid, forKey: .uuid)
            try c.encode(bootable, forKey: .bootable)
            try c.encodeIfPresent(attributes, forKey: .attributes)
            try c.encodeIfPresent(slotAttributes, forKey: .slotAttributes)
            try c.encode(extended, forKey: .extended)
            try c.encode(logical, forKey: .logical)
            try c.encode(withinImage, forKey: .withinImage)
            try c.encode(filesystem, forKey: .filesystem)
        }
    }

    public var image: Image
    public var table: Table
    public var partitions: [PartitionInfo]

    /// The `inspect --json` document (pretty-printed, keys sorted).
    public func json() throws -> String {
        try JSONText.pretty(self)
    }

    /// A readable table: one line per partition (the warnings go to standard error, as every
    /// command prints them: `table.warnings`).
    public func text() -> String {
        var lines: [String] = []
        let container = image.format.map { $0 == "raw" ? "" : " (\($0) image)" } ?? ""
        var header = "\(image.path)\(container): \(table.type) partition table"
        if table.type == "none" { header = "\(image.path)\(container): no partition table" }
        header += ", \(Self.human(image.size)) (\(image.size) bytes), \(image.sectorSize)-byte sectors"
        if let id = table.diskID { header += ", disk id \(id)" }
        lines.append(header)
        let columns = ["#", "START", "SIZE", "NAME", "TYPE", "FS", "LABEL"]
        var rows: [[String]] = [columns]
        for p in partitions {
            var typeText = p.typeName ?? p.type ?? "-"
            if p.extended { typeText += " (extended)" }
            rows.append([
                String(p.index), Self.human(p.start), Self.human(p.size), p.name ?? "-", typeText,
                p.filesystem.map { fs in fs.version.map { "\(fs.type) (\($0))" } ?? fs.type } ?? "-",
                p.filesystem?.label ?? "-",
            ])
        }
        if partitions.isEmpty { rows.append(["", "(no partitions)", "", "", "", "", ""]) }
        var widths = [Int](repeating: 0, count: columns.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            lines.append("  " + cells.joined(separator: "  "))
        }
        let slots = partitions.compactMap { p in p.slotAttributes.map { "\(p.index) (\(p.name ?? "-")) \($0)" } }
        if !slots.isEmpty { lines.append("GPT slot attribute bits: " + slots.joined(separator: "; ")) }
        for p in partitions {
            if let fs = p.filesystem, let features = fs.features {
                lines.append("partition \(p.index): \(fs.type) features: \(features.isEmpty ? "none" : features.joined(separator: ","))")
            }
        }
        if let hybrid = table.hybridMBR, !hybrid.isEmpty {
            lines.append("hybrid MBR entries (the GPT is used): " + hybrid.map {
                "\($0.index): \($0.type ?? "?") at \(Self.human($0.start)), \(Self.human($0.size))"
            }.joined(separator: "; "))
        }
        return lines.joined(separator: "\n")
    }

    /// 1536 -> "1.5 KiB", 33554432 -> "32 MiB".
    public static func human(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded()
            ? "\(Int(rounded)) \(units[unit])"
            : "\(String(format: "%.1f", rounded)) \(units[unit])"
    }
}
