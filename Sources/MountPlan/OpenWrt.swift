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

    static func bootedRoot(disk: any PlanningDisk, root: RootChoice, physical: any FileSystemReader) -> (root: BootedRoot?, warnings: [String]) {
        var warnings: [String] = []
        let rootMount = PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                                     source: .other(root.reason))
        var boot: [PlannedMount] = []
        // p1 "kernel" at /boot, then its boot/ over /boot.
        if let kernel = disk.partitions.first(where: { $0.index == 1 }), kernel.index != root.partition, let type = kernel.fsType {
            boot.append(PlannedMount(where: "/boot", kind: .partition, partition: 1, fstype: type, options: "",
                                     source: .other("OpenWrt: the kernel partition at /boot")))
            if let fs = disk.openedFileSystem(1), ProfilePaths.directory("/boot", in: fs, warnings: &warnings) != nil {
                boot.append(PlannedMount(where: "/boot", kind: .bind, options: "bind", what: "/boot/boot",
                                         source: .other("OpenWrt: the kernel partition's boot/ bound over /boot")))
            }
        }
        if ProfilePaths.exists("/etc/config/fstab", in: physical, warnings: &warnings) {
            warnings.append("OpenWrt: UCI /etc/config/fstab (block-mount) entries are not modelled yet")
        }
        func plain(_ why: String) -> (root: BootedRoot?, warnings: [String]) {
            (BootedRoot(mounts: [rootMount] + boot, config: physical), warnings + ["OpenWrt: \(why); / is the squashfs alone"])
        }
        guard root.filesystem == "squashfs" else { return plain("the root is \(root.filesystem), not a squashfs") }
        let located: RootfsData
        switch rootfsData(disk: disk, root: root) {
        case .found(let found): located = found
        case .missing(let why): return plain(why)
        }
        let (data, dataPartition, end, declared) = (located.reader, located.partition, located.offset, located.declared)
        guard let upper = ProfilePaths.directory("/upper", in: data, warnings: &warnings) else {
            return plain("rootfs_data \(located.place) has no upper/ directory")
        }
        let mounts = [
            rootMount,
            PlannedMount(where: "/rom", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("OpenWrt: the squashfs, lower layer of the root overlay")),
            PlannedMount(where: "/overlay", kind: .partition, partition: dataPartition, offset: end, fstype: data.formatName,
                         options: "", source: .other(declared)),
            PlannedMount(where: "/", kind: .overlay, fstype: "overlay", options: "", lower: ["/rom"], upper: "/overlay/upper",
                         source: .other("OpenWrt mount_root: overlay of rootfs_data's upper/ over the squashfs")),
            PlannedMount(where: "/rom", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("OpenWrt: the squashfs after pivot_root")),
            PlannedMount(where: "/overlay", kind: .partition, partition: dataPartition, offset: end, fstype: data.formatName,
                         options: "", source: .other(declared)),
        ] + boot
        var config: any FileSystemReader = physical
        do {
            config = try NamespaceFileSystem(overlayOf: [Layer(reader: data, inode: upper), Layer(reader: physical, inode: physical.rootInode)],
                                             name: "\(physical.sourceName) with rootfs_data")
        } catch {
            warnings.append("OpenWrt: rootfs_data's upper/ cannot be laid over the squashfs (\(FWError(error).message)); /etc/fstab and units are read from the squashfs alone")
        }
        return (BootedRoot(mounts: mounts, config: config), warnings)
    }

    /// Where rootfs_data is: the filesystem, its partition and offset there (nil: the whole
    /// partition), the mount's declaration and a place for messages.
    struct RootfsData {
        var reader: any FileSystemReader
        var partition: Int
        var offset: UInt64?
        var declared: String
        var place: String
    }

    enum RootfsDataSearch {
        case found(RootfsData)
        case missing(String)
    }

    /// Raw flash erase block sizes after 64 KiB that NOR rootfs_data may be aligned to (the
    /// JFFS2 overlay starts at the next erase block after the squashfs).
    static let norEraseBlocks: [UInt64] = [128 * 1024, 256 * 1024]

    /// rootfs_data: on NAND a UBI volume of that name (beside the "rootfs" volume); otherwise
    /// after the squashfs in its partition, at its size rounded up to 64 KiB (x86 images, NOR
    /// flash with 64 KiB erase blocks), or to a larger NOR erase block when nothing is there.
    static func rootfsData(disk: any PlanningDisk, root: RootChoice) -> RootfsDataSearch {
        if let volume = disk.partitions.first(where: { $0.name == "rootfs_data" && $0.index != root.partition && $0.typeID?.hasPrefix("ubi") == true }) {
            guard let fs = disk.openedFileSystem(volume.index) else {
                return .missing("the UBI volume rootfs_data (partition \(volume.index)) holds no filesystem fwassemble reads (not formatted before the first boot)")
            }
            return .found(RootfsData(reader: fs, partition: volume.index, offset: nil,
                                     declared: "OpenWrt: the UBI volume rootfs_data (partition \(volume.index))", place: "(UBI volume)"))
        }
        let end: UInt64
        do {
            guard let e = try squashfsEnd(try disk.rawBytes(partition: root.partition, count: 96)) else {
                return .missing("no squashfs superblock at the start of partition \(root.partition)")
            }
            end = e
        } catch {
            return .missing("the squashfs superblock cannot be read: \(FWError(error).message)")
        }
        var candidates = [(end, "the squashfs's size rounded up to 64 KiB")]
        for block in norEraseBlocks where end % block != 0 {
            candidates.append(((end + block - 1) / block * block, "the squashfs's size rounded up to the \(block >> 10) KiB NOR erase block"))
        }
        for (offset, how) in candidates {
            let found: (any FileSystemReader)?
            do {
                found = try disk.fileSystem(partition: root.partition, offset: offset)
            } catch {
                return .missing("rootfs_data at byte \(offset) of partition \(root.partition) cannot be opened (\(FWError(error).message))")
            }
            if let found {
                return .found(RootfsData(reader: found, partition: root.partition, offset: offset,
                                         declared: "OpenWrt: rootfs_data at byte \(offset) of partition \(root.partition) (\(how))",
                                         place: "at byte \(offset)"))
            }
        }
        return .missing("no rootfs_data filesystem at byte \(end) of partition \(root.partition) (not formatted before the first boot)")
    }
}
