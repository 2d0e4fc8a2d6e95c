import Assembly
import DiskImage
import FileSystems

/// OpenWrt squashfs images (field guide §5): the root partition holds a squashfs followed, at
/// its size rounded up to 64 KiB, by the writable rootfs_data whose `upper/` is the overlayfs
/// upper layer of "/". After mount_root's pivot the squashfs stays visible at /rom and
/// rootfs_data at /overlay. The first partition ("kernel") is mounted at /boot and its own boot/
/// directory bound over /boot.
enum OpenWrtProfile {
    /// rootfs_data starts at the squashfs's bytes_used rounded up to this.
    static let alignment: UInt64 = 64 * 1024

    /// squashfs 4.0 superblock: s_magic[4] at 0 ("hsqs", `FileSystemKind.table`), bytes_used
    /// (u64 LE) at 40.
    static func squashfsEnd(_ head: [UInt8]) throws -> UInt64? {
        guard FileSystemKind.squashfs.hasMagic(in: head) else { return nil }
        let c = ByteCursor(head, context: "squashfs superblock")
        let used = try c.u64le(at: 40)
        let (padded, overflow) = used.addingReportingOverflow(alignment - 1)
        guard !overflow else { return nil }
        return padded / alignment * alignment
    }

    /// The filesystem laid over the squashfs: rootfs_data or the extroot.
    struct DataLocation {
        var reader: any FileSystemReader
        var partition: Int
        /// Byte offset inside the partition (rootfs_data after the squashfs), nil for a whole one.
        var offset: UInt64?
        /// The inode of its upper/ directory.
        var upper: UInt64
        /// Where it came from, for the plan.
        var source: MountSource
        /// "rootfs_data" or "the extroot".
        var name = "rootfs_data"
    }

    static func bootedRoot(disk: any PlanningDisk, root: RootChoice, physical: any FileSystemReader) -> (root: BootedRoot?, warnings: [String]) {
        var warnings: [String] = []
        let rootMount = PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                                     source: .other(root.reason))
        let boot = bootMounts(disk: disk, root: root, warnings: &warnings)
        func plain(_ why: String) -> (root: BootedRoot?, warnings: [String]) {
            (BootedRoot(mounts: [rootMount] + boot, config: physical), warnings + ["OpenWrt: \(why); / is the squashfs alone"])
        }
        guard root.filesystem == "squashfs" else { return plain("the root is \(root.filesystem), not a squashfs") }
        var data: DataLocation
        switch rootfsData(disk: disk, root: root, warnings: &warnings) {
        case .success(let found): data = found
        case .failure(let why): return plain(why.message)
        }
        var config = overlayView(data, physical: physical, warnings: &warnings)
        if let ext = extroot(disk: disk, root: root, config: config, warnings: &warnings) {
            data = ext
            config = overlayView(ext, physical: physical, warnings: &warnings)
        }
        let overlay = PlannedMount(where: "/overlay", kind: .partition, partition: data.partition, offset: data.offset,
                                   fstype: data.reader.formatName, options: "", source: data.source)
        let mounts = [
            rootMount,
            PlannedMount(where: "/rom", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("OpenWrt: the squashfs, lower layer of the root overlay")),
            overlay,
            PlannedMount(where: "/", kind: .overlay, fstype: "overlay", options: "", lower: ["/rom"], upper: "/overlay/upper",
                         source: .other("OpenWrt mount_root: overlay of \(data.name)'s upper/ over the squashfs")),
            PlannedMount(where: "/rom", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("OpenWrt: the squashfs after pivot_root")),
            overlay,
        ] + boot
        return (BootedRoot(mounts: mounts, config: config), warnings)
    }

    /// p1 "kernel" at /boot, then its boot/ over /boot.
    static func bootMounts(disk: any PlanningDisk, root: RootChoice, warnings: inout [String]) -> [PlannedMount] {
        var boot: [PlannedMount] = []
        if let kernel = disk.partitions.first(where: { $0.index == 1 }), kernel.index != root.partition, let type = kernel.fsType {
            boot.append(PlannedMount(where: "/boot", kind: .partition, partition: 1, fstype: type, options: "",
                                     source: .other("OpenWrt: the kernel partition at /boot")))
            if let fs = disk.openedFileSystem(1), ProfilePaths.directory("/boot", in: fs, warnings: &warnings) != nil {
                boot.append(PlannedMount(where: "/boot", kind: .bind, options: "bind", what: "/boot/boot",
                                         source: .other("OpenWrt: the kernel partition's boot/ bound over /boot")))
            }
        }
        return boot
    }

    /// rootfs_data as fstools finds it: inside the root partition at the squashfs's size rounded
    /// up to 64 KiB (`rootdisk`; f2fs or ext4, whichever magic is there: fstools formats f2fs
    /// when at least 100 MiB remain, else ext4; on NOR flash a JFFS2, possibly at the next larger
    /// erase block), else a partition or UBI volume named or labelled "rootfs_data" (`partname`,
    /// NAND's UBI volume). Either must hold upper/. The failure says why there is none.
    static func rootfsData(disk: any PlanningDisk, root: RootChoice, warnings: inout [String]) -> Result<DataLocation, FWError> {
        var why: String
        do {
            if let end = try squashfsEnd(try disk.rawBytes(partition: root.partition, count: 96)) {
                why = "no rootfs_data filesystem at byte \(end) of partition \(root.partition) (not formatted before the first boot)"
                // x86 images and NOR flash with 64 KiB erase blocks: the next 64 KiB; larger NOR
                // erase blocks: the next of those, when nothing is at the first.
                var candidates = [(end, "the squashfs's size rounded up to 64 KiB")]
                for block in norEraseBlocks where end % block != 0 {
                    candidates.append(((end + block - 1) / block * block, "the squashfs's size rounded up to the \(block >> 10) KiB NOR erase block"))
                }
                for (offset, how) in candidates {
                    do {
                        if let data = try disk.fileSystem(partition: root.partition, offset: offset) {
                            guard let upper = ProfilePaths.directory("/upper", in: data, warnings: &warnings) else {
                                return .failure(FWError.corrupt("rootfs_data at byte \(offset) has no upper/ directory"))
                            }
                            return .success(DataLocation(reader: data, partition: root.partition, offset: offset, upper: upper, source: .other(
                                "OpenWrt: rootfs_data at byte \(offset) of partition \(root.partition) (\(how))")))
                        }
                    } catch {
                        why = "rootfs_data at byte \(offset) of partition \(root.partition) cannot be opened (\(FWError(error).message))"
                        break
                    }
                }
            } else {
                why = "no squashfs superblock at the start of partition \(root.partition)"
            }
        } catch {
            why = "the squashfs superblock cannot be read: \(FWError(error).message)"
        }
        let named = disk.partitions.first { $0.index != root.partition && ($0.name == "rootfs_data" || $0.label == "rootfs_data") }
        if let part = named, let data = disk.openedFileSystem(part.index) {
            guard let upper = ProfilePaths.directory("/upper", in: data, warnings: &warnings) else {
                return .failure(FWError.corrupt("the rootfs_data partition \(part.index) has no upper/ directory"))
            }
            let what = part.typeID?.hasPrefix("ubi") == true ? "the UBI volume rootfs_data (partition \(part.index))" : "rootfs_data, \(part.displayName)"
            return .success(DataLocation(reader: data, partition: part.index, offset: nil, upper: upper, source: .other("OpenWrt: \(what)")))
        }
        return .failure(FWError(.notFound, why))
    }

    /// The extroot (block-mount's `config mount` with `option target '/overlay'`, enabled), read
    /// from the configuration the rootfs_data overlay shows: its partition's upper/ becomes the
    /// overlay's upper layer instead of rootfs_data's (fstools `block extroot`). Nil (with a
    /// warning when one is declared) when there is none or it cannot be used.
    static func extroot(disk: any PlanningDisk, root: RootChoice, config: any FileSystemReader, warnings: inout [String]) -> DataLocation? {
        guard let fstab = UCIFstab.read(from: config, warnings: &warnings),
              let entry = fstab.entries.first(where: { $0.isExtroot && $0.enabled }) else { return nil }
        let declared = entry.source.description
        func unusable(_ why: String) -> DataLocation? {
            warnings.append("\(declared): extroot \(why); rootfs_data stays the overlay")
            return nil
        }
        guard let device = entry.device else { return unusable("names no uuid, label or device") }
        let resolver = DeviceResolver(partitions: disk.partitions, rootPartition: root.partition)
        guard case .partition(let index, let note) = resolver.resolve(DeviceSpec(parsing: device)) else {
            return unusable("device \(device) is not a partition of this disk")
        }
        if let note { warnings.append("\(declared): \(note)") }
        guard let fs = disk.openedFileSystem(index) else { return unusable("partition \(index) has no filesystem fwassemble reads") }
        guard let upper = ProfilePaths.directory("/upper", in: fs, warnings: &warnings) else {
            return unusable("partition \(index) has no upper/ directory (not yet used as an extroot)")
        }
        return DataLocation(reader: fs, partition: index, offset: nil, upper: upper,
                            source: .other("OpenWrt extroot: \(declared) (option target '/overlay', \(device))"), name: "the extroot")
    }

    /// The booted root's configuration: `data`'s upper/ laid over the squashfs.
    static func overlayView(_ data: DataLocation, physical: any FileSystemReader, warnings: inout [String]) -> any FileSystemReader {
        do {
            return try NamespaceFileSystem(overlayOf: [Layer(reader: data.reader, inode: data.upper), Layer(reader: physical, inode: physical.rootInode)],
                                           name: "\(physical.sourceName) with rootfs_data")
        } catch {
            warnings.append("OpenWrt: rootfs_data's upper/ cannot be laid over the squashfs (\(FWError(error).message)); /etc/fstab and units are read from the squashfs alone")
            return physical
        }
    }

    /// Raw flash erase block sizes after 64 KiB that NOR rootfs_data may be aligned to (the
    /// JFFS2 overlay starts at the next erase block after the squashfs).
    static let norEraseBlocks: [UInt64] = [128 * 1024, 256 * 1024]
}
