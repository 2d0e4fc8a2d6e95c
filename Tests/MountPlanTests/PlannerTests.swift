import DiskImage
import FileSystems
import Testing
@testable import MountPlan

/// A disk made of in-memory filesystems and raw partitions.
final class FakeDisk: PlanningDisk {
    var partitions: [PlanPartition] = []
    var filesystems: [Int: MemoryFileSystem] = [:]
    var raw: [Int: [UInt8]] = [:]

    func add(_ p: PlanPartition, fs: MemoryFileSystem? = nil, raw bytes: [UInt8]? = nil) {
        partitions.append(p)
        if let fs { filesystems[p.index] = fs }
        if let bytes { raw[p.index] = bytes }
    }

    func fileSystem(partition index: Int) throws -> (any FileSystemReader)? { filesystems[index] }

    func rawBytes(partition index: Int, count: Int) throws -> [UInt8] { Array((raw[index] ?? []).prefix(count)) }

    /// The whole disk's bytes for `rawDiskBytes` (the gap before the first partition).
    var wholeDisk: [UInt8] = []

    func rawDiskBytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < UInt64(wholeDisk.count) else { return [] }
        return Array(wholeDisk[Int(offset)...].prefix(count))
    }
}

func linuxRoot(_ name: String) -> MemoryFileSystem {
    let fs = MemoryFileSystem(sourceName: name)
    fs.addFile("/etc/os-release", "ID=test\n")
    fs.addDirectory("/usr/bin")
    fs.addDirectory("/sbin")
    return fs
}

func grubenv(_ body: String) -> [UInt8] {
    let text = "# GRUB Environment Block\n" + body
    return Array((text + String(repeating: "#", count: 1024 - text.utf8.count)).utf8)
}

/// The HAOS layout of the field guide, scaled down, with its units.
func haosDisk(grub: String = "ORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\n", slotB: Bool = false) -> FakeDisk {
    let disk = FakeDisk()
    let boot = MemoryFileSystem(formatName: "vfat")
    boot.addFile("/EFI/BOOT/grubenv", grubenv(grub))
    disk.add(PlanPartition(index: 1, name: "hassos-boot", fsType: "vfat", label: "hassos-boot", size: 32 << 20), fs: boot)
    disk.add(PlanPartition(index: 2, name: "hassos-kernel0", fsType: "squashfs", size: 24 << 20), fs: MemoryFileSystem())
    let root = linuxRoot("system0")
    let lib = "/usr/lib/systemd/system"
    root.addFile("/etc/fstab", "# empty\n")
    root.addFile("\(lib)/mnt-data.mount", "[Mount]\nWhat=/dev/disk/by-label/hassos-data\nWhere=/mnt/data\nType=ext4\nOptions=commit=30\n[Install]\nWantedBy=local-fs.target\n")
    root.addFile("\(lib)/mnt-overlay.mount", "[Mount]\nWhat=/dev/disk/by-label/hassos-overlay\nWhere=/mnt/overlay\nType=ext4\n")
    root.addFile("\(lib)/mnt-boot.mount", "[Mount]\nWhat=/dev/disk/by-label/hassos-boot\nWhere=/mnt/boot\nType=auto\nOptions=sync\n")
    root.addFile("\(lib)/mnt-config.mount", "[Mount]\nWhat=LABEL=CONFIG\nWhere=/mnt/config\n")
    root.addFile("\(lib)/var-lib-docker.mount", "[Mount]\nWhat=/mnt/data/docker\nWhere=/var/lib/docker\nType=none\nOptions=bind\n")
    root.addFile("\(lib)/etc-hostname.mount", "[Mount]\nWhat=/mnt/overlay/etc/hostname\nWhere=/etc/hostname\nType=None\nOptions=bind\n")
    root.addFile("\(lib)/etc-NetworkManager-system\\x2dconnections.mount",
                 "[Mount]\nWhat=/mnt/overlay/etc/NetworkManager/system-connections\nWhere=/etc/NetworkManager/system-connections\nType=none\nOptions=bind\n")
    root.addFile("\(lib)/root-.ssh.mount", "[Mount]\nWhat=/mnt/overlay/root/.ssh\nWhere=/root/.ssh\nType=none\nOptions=bind\n")
    root.addFile("\(lib)/var.mount", "[Mount]\nWhat=tmpfs\nWhere=/var\nType=tmpfs\n")
    root.addFile("\(lib)/hassos-bind.target", "[Unit]\nDescription=binds\n")
    root.addSymlink("/etc/systemd/system/default.target", target: "/usr/lib/systemd/system/multi-user.target")
    for unit in ["mnt-data.mount", "mnt-overlay.mount", "mnt-boot.mount", "var.mount"] {
        root.addSymlink("/etc/systemd/system/local-fs.target.wants/\(unit)", target: "\(lib)/\(unit)")
    }
    root.addSymlink("/etc/systemd/system/multi-user.target.wants/hassos-bind.target", target: "\(lib)/hassos-bind.target")
    for unit in ["var-lib-docker.mount", "etc-hostname.mount", "etc-NetworkManager-system\\x2dconnections.mount", "root-.ssh.mount"] {
        root.addSymlink("/etc/systemd/system/hassos-bind.target.wants/\(unit)", target: "\(lib)/\(unit)")
    }
    disk.add(PlanPartition(index: 3, name: "hassos-system0", fsType: "erofs", size: 256 << 20), fs: root)
    disk.add(PlanPartition(index: 4, name: "hassos-kernel1", size: 24 << 20))
    if slotB {
        let b = linuxRoot("system1")
        b.addFile("/etc/fstab", "# slot b\n")
        disk.add(PlanPartition(index: 5, name: "hassos-system1", fsType: "squashfs", size: 256 << 20), fs: b)
    } else {
        disk.add(PlanPartition(index: 5, name: "hassos-system1", size: 256 << 20))
    }
    disk.add(PlanPartition(index: 6, name: "hassos-bootstate", size: 8 << 20), raw: [UInt8](repeating: 0, count: 4096))
    let overlay = MemoryFileSystem()
    overlay.addFile("/etc/hostname", "homeassistant\n")
    overlay.addDirectory("/etc/NetworkManager/system-connections")
    // /root/.ssh deliberately missing: its bind is skipped with a warning.
    disk.add(PlanPartition(index: 7, name: "hassos-overlay", fsType: "ext4", label: "hassos-overlay", size: 96 << 20), fs: overlay)
    let data = MemoryFileSystem()
    data.addDirectory("/docker/overlay2")
    disk.add(PlanPartition(index: 8, name: "hassos-data", fsType: "ext4", label: "hassos-data", size: 1280 << 20), fs: data)
    return disk
}

@Suite("mount planner")
struct PlannerTests {
    @Test func haosSlotAWithUnitsAndBinds() throws {
        let plan = try Planner.plan(haosDisk())
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("ORDER=A B"))
        #expect(plan.profile == "haos")
        let wheres = plan.mounts.map(\.where)
        // Depth first, then declaration order (units in name order).
        #expect(wheres == ["/", "/mnt/boot", "/mnt/data", "/mnt/overlay", "/etc/hostname",
                           "/etc/NetworkManager/system-connections", "/var/lib/docker"])
        let data = try #require(plan.mounts.first { $0.where == "/mnt/data" })
        #expect(data.partition == 8 && data.fstype == "ext4" && data.options == "commit=30")
        #expect(data.declaredBy == "/usr/lib/systemd/system/mnt-data.mount")
        let docker = try #require(plan.mounts.first { $0.where == "/var/lib/docker" })
        #expect(docker.kind == .bind && docker.what == "/mnt/data/docker")
        let boot = try #require(plan.mounts.first { $0.where == "/mnt/boot" })
        #expect(boot.fstype == "vfat")
        #expect(plan.skipped.contains { $0.where == "/mnt/config" && $0.reason == "unit not enabled" })
        #expect(plan.skipped.contains { $0.where == "/var" && $0.reason == "volatile tmpfs" })
        #expect(plan.skipped.contains { $0.where == "/root/.ssh" && $0.reason.contains("missing") })
        #expect(plan.warnings.contains { $0.contains("/root/.ssh") })
    }

    @Test func grubenvChoosesSlotB() throws {
        let disk = haosDisk(grub: "ORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0\n", slotB: true)
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 5)
        #expect(plan.root.filesystem == "squashfs")
    }

    @Test func zeroedOrFailedSlotIsNeverChosen() throws {
        // B first in ORDER but its partition is all zeros: A boots.
        let plan = try Planner.plan(haosDisk(grub: "ORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0\n", slotB: false))
        #expect(plan.root.partition == 3)
        // B has used its three tries: A boots.
        let plan2 = try Planner.plan(haosDisk(grub: "ORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=3\n", slotB: true))
        #expect(plan2.root.partition == 3)
    }

    @Test("no root: the error says what each partition holds instead")
    func noRootNamesWhatEachPartitionHolds() throws {
        final class Unreadable: PlanningDisk {
            let partitions = [
                PlanPartition(index: 1, name: "boot", fsType: "vfat", size: 8 << 20),
                PlanPartition(index: 2, fsType: "xfs", size: 64 << 20),
                PlanPartition(index: 3, size: 1 << 20),
                PlanPartition(index: 4, name: "data", fsType: "ext4", size: 0),
            ]
            func fileSystem(partition index: Int) throws -> (any FileSystemReader)? {
                index == 1 ? MemoryFileSystem(formatName: "vfat") : nil
            }
            func rawBytes(partition index: Int, count: Int) throws -> [UInt8] { [] }
            func unreadableReason(partition index: Int) -> String? {
                index == 4 ? "reaches past the end of the image (image 100 bytes, partition ends at 200)" : nil
            }
        }
        let error = try #require(throws: FWError.self) { try Planner.plan(Unreadable()) }
        #expect(error.code == .notFound)
        #expect(error.message == "no partition holds a Linux root filesystem fwassemble reads (an /etc directory with /usr, /bin or /sbin): "
            + "partition 1 (boot) holds vfat with no Linux root in it; partition 2 holds xfs, which fwassemble does not read; "
            + "partition 3 holds no filesystem libblkid recognises; "
            + "partition 4 (data) reaches past the end of the image (image 100 bytes, partition ends at 200)")
    }

    @Test func rootOverride() throws {
        let disk = haosDisk(slotB: true)
        #expect(try Planner.plan(disk, options: PlanOptions(root: "5")).root.partition == 5)
        #expect(try Planner.plan(disk, options: PlanOptions(root: "hassos-system1")).root.partition == 5)
        #expect(throws: FWError.self) { try Planner.plan(disk, options: PlanOptions(root: "nope")) }
    }

    @Test func maskedShadowedDropInAndWhereMismatch() throws {
        let disk = haosDisk()
        let root = disk.filesystems[3]!
        // Masked in /etc.
        root.addSymlink("/etc/systemd/system/mnt-boot.mount", target: "/dev/null")
        // /etc copy shadows /usr/lib: different options.
        root.addFile("/etc/systemd/system/mnt-overlay.mount", "[Mount]\nWhat=/dev/disk/by-label/hassos-overlay\nWhere=/mnt/overlay\nType=ext4\nOptions=noatime\n")
        // A drop-in changes Options= of mnt-data.mount.
        root.addFile("/etc/systemd/system/mnt-data.mount.d/override.conf", "[Mount]\nOptions=ro\n")
        // Where= disagrees with the name.
        root.addFile("/usr/lib/systemd/system/mnt-other.mount", "[Mount]\nWhat=/dev/sda1\nWhere=/mnt/else\n")
        root.addSymlink("/etc/systemd/system/local-fs.target.wants/mnt-other.mount", target: "/usr/lib/systemd/system/mnt-other.mount")
        let plan = try Planner.plan(disk)
        #expect(!plan.mounts.contains { $0.where == "/mnt/boot" })
        #expect(plan.skipped.contains { $0.where == "/mnt/boot" && $0.reason == "unit masked" })
        #expect(plan.mounts.first { $0.where == "/mnt/overlay" }?.options == "noatime")
        #expect(plan.mounts.first { $0.where == "/mnt/overlay" }?.declaredBy == "/etc/systemd/system/mnt-overlay.mount")
        #expect(plan.mounts.first { $0.where == "/mnt/data" }?.options == "ro")
        #expect(!plan.mounts.contains { $0.where == "/mnt/else" })
        #expect(plan.warnings.contains { $0.contains("does not match the unit name") })
    }

    @Test func raspberryPiFstabByPartUUID() throws {
        let disk = FakeDisk()
        let boot = MemoryFileSystem(formatName: "vfat")
        boot.addFile("/cmdline.txt", "console=serial0,115200 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 fsck.repair=yes rootwait\n")
        disk.add(PlanPartition(index: 1, partUUID: "1a2b3c4d-01", typeID: "0x0c", fsType: "vfat", label: "bootfs", size: 512 << 20), fs: boot)
        let root = linuxRoot("rootfs")
        root.addDirectory("/boot/firmware")
        root.addFile("/etc/fstab", """
        proc            /proc           proc    defaults          0       0
        PARTUUID=1a2b3c4d-01  /boot/firmware  vfat    defaults          0       2
        PARTUUID=1a2b3c4d-02  /               ext4    defaults,noatime  0       1
        UUID=dead-beef /mnt/usb ext4 noauto 0 0
        /dev/mmcblk0p9 /mnt/missing ext4 defaults 0 0
        """)
        disk.add(PlanPartition(index: 2, partUUID: "1a2b3c4d-02", typeID: "0x83", fsType: "ext4", label: "rootfs", size: 4 << 30), fs: root)
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 2)
        #expect(plan.mounts.map(\.where) == ["/", "/boot/firmware"])
        #expect(plan.mounts[1].partition == 1 && plan.mounts[1].fstype == "vfat" && plan.mounts[1].declaredBy == "/etc/fstab:2")
        #expect(plan.skipped.contains { $0.where == "/proc" && $0.reason == "virtual proc" })
        #expect(plan.skipped.contains { $0.where == "/mnt/usb" && $0.reason == "noauto" })
        #expect(plan.skipped.contains { $0.where == "/mnt/missing" && $0.reason.contains("not found") })
    }

    @Test func menderDevicePathsAndUBootSlot() throws {
        let disk = FakeDisk()
        disk.add(PlanPartition(index: 1, fsType: "vfat", size: 16 << 20), fs: MemoryFileSystem())
        for i in [2, 3] {
            let root = linuxRoot("root\(i)")
            root.addFile("/etc/fstab", "/dev/mmcblk0p1 /uboot auto defaults,sync 0 2\n/dev/mmcblk0p4 /data auto defaults 0 2\n")
            root.addFile("/etc/slot", "\(i)")
            disk.add(PlanPartition(index: i, fsType: "ext4", size: 64 << 20), fs: root)
        }
        let data = MemoryFileSystem()
        data.addDirectory("/mender")
        disk.add(PlanPartition(index: 4, fsType: "ext4", label: "data", size: 64 << 20), fs: data)
        // The U-Boot environment as a file is not Mender's usual place; use a raw partition 5.
        var env: [UInt8] = Array("mender_boot_part=3\0bootcount=0\0\0".utf8)
        env += [UInt8](repeating: 0, count: 0x2000 - 4 - env.count)
        let crc = CRC32.checksum(env)
        disk.add(PlanPartition(index: 5, size: 1 << 20), raw: [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)] + env)
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("mender_boot_part=3"))
        #expect(plan.mounts.map(\.where) == ["/", "/uboot", "/data"])
        #expect(plan.mounts.first { $0.where == "/data" }?.partition == 4)
        #expect(plan.mounts.first { $0.where == "/uboot" }?.fstype == "vfat")
    }

    @Test func bindOrderedAfterTheMountHoldingItsSource() throws {
        let disk = FakeDisk()
        let root = linuxRoot("root")
        root.addFile("/etc/fstab", "/srv/data/www /www none bind 0 0\nLABEL=data /srv/data ext4 defaults 0 0\n")
        disk.add(PlanPartition(index: 1, fsType: "ext4", size: 1 << 20), fs: root)
        let data = MemoryFileSystem()
        data.addDirectory("/www")
        disk.add(PlanPartition(index: 2, fsType: "ext4", label: "data", size: 1 << 20), fs: data)
        let plan = try Planner.plan(disk)
        #expect(plan.mounts.map(\.where) == ["/", "/srv/data", "/www"])
    }

    @Test func symlinkLoopsInWantsDoNotHang() throws {
        let disk = haosDisk()
        let root = disk.filesystems[3]!
        root.addSymlink("/etc/systemd/system/loop1.target", target: "loop2.target")
        root.addSymlink("/etc/systemd/system/loop2.target", target: "loop1.target")
        root.addSymlink("/etc/systemd/system/multi-user.target.wants/loop1.target", target: "../loop1.target")
        root.addFile("/usr/lib/systemd/system/a.target", "[Unit]\nWants=b.target\n")
        root.addFile("/usr/lib/systemd/system/b.target", "[Unit]\nWants=a.target\n")
        root.addSymlink("/etc/systemd/system/multi-user.target.wants/a.target", target: "/usr/lib/systemd/system/a.target")
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 3)
        #expect(plan.mounts.count == 7)
    }

    /// A unit directory that cannot be read (here a symlink loop) is a warning naming it, not a
    /// silently empty set of units.
    @Test func unreadableUnitDirectoryIsAWarning() throws {
        let disk = FakeDisk()
        let root = linuxRoot("root")
        root.addSymlink("/etc/systemd/system", target: "/etc/systemd/system")
        disk.add(PlanPartition(index: 1, fsType: "ext4", size: 64 << 20), fs: root)
        let plan = try Planner.plan(disk)
        #expect(plan.warnings.contains { $0.hasPrefix("/etc/systemd/system") && $0.contains("unreadable") }, "\(plan.warnings)")
    }

    /// A boot file that exists but cannot be read (a symlink loop) is a warning: the root choice
    /// does not silently ignore the bootloader state.
    @Test func unreadableBootFileIsAWarning() throws {
        let disk = FakeDisk()
        let boot = MemoryFileSystem(formatName: "vfat")
        boot.addSymlink("/EFI/BOOT/grubenv", target: "/EFI/BOOT/grubenv")
        disk.add(PlanPartition(index: 1, name: "boot", fsType: "vfat", size: 32 << 20), fs: boot)
        disk.add(PlanPartition(index: 2, fsType: "ext4", size: 64 << 20), fs: linuxRoot("root"))
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 2)
        #expect(plan.warnings.contains { $0.hasPrefix("/EFI/BOOT/grubenv on partition 1 (boot): unreadable") }, "\(plan.warnings)")
    }
}
