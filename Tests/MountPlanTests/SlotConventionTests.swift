import DiskImage
import FileSystems
import PartitionTable
import Testing
@testable import MountPlan

/// The slot conventions' parsers and rules on in-memory disks: RAUC backends that cannot be read
/// from a disk (barebox, EFI), HAOS's system.conf shape (bootname on the kernel slot), a slot
/// without a root, conventions that disagree, fw_env.config forms.
@Suite("slot conventions")
struct SlotConventionTests {
    static func raucConf(_ bootloader: String) -> String {
        """
        [system]
        compatible=board
        bootloader=\(bootloader)

        [slot.rootfs.0]
        device=/dev/disk/by-partlabel/rootfs-a
        bootname=A

        [slot.rootfs.1]
        device=/dev/disk/by-partlabel/rootfs-b
        bootname=B
        """
    }

    /// GPT: p1 vfat boot, p2 raw env, p3/p4 rootfs-a/b (p4 without a filesystem when `emptyB`).
    static func raucDisk(bootloader: String, env: [UInt8] = [], boot: [String: String] = [:], emptyB: Bool = false,
                         fwEnv: String? = nil) -> FakeDisk {
        let disk = FakeDisk()
        let bootFS = MemoryFileSystem(formatName: "vfat")
        for (path, text) in boot { bootFS.addFile(path, text) }
        disk.add(PlanPartition(index: 1, name: "boot", fsType: "vfat", size: 8 << 20), fs: bootFS)
        disk.add(PlanPartition(index: 2, name: "uboot-env", size: 1 << 20), raw: env)
        for (index, name) in [(3, "rootfs-a"), (4, "rootfs-b")] {
            if emptyB && index == 4 {
                disk.add(PlanPartition(index: 4, name: name, size: 16 << 20))
                continue
            }
            let root = linuxRoot(name)
            root.addFile("/etc/rauc/system.conf", Self.raucConf(bootloader))
            if let fwEnv { root.addFile("/etc/fw_env.config", fwEnv) }
            disk.add(PlanPartition(index: index, name: name, fsType: "ext4", size: 16 << 20), fs: root)
        }
        return disk
    }

    @Test func parsesRAUCSystemConfig() {
        let config = RAUCSystemConfig.parse(Array("""
            [system]
            compatible=haos-ova
            bootloader=grub
            grubenv=/mnt/boot/EFI/BOOT/grubenv
            statusfile=/mnt/data/rauc.db
            # a comment
            [slot.kernel.0]
            device=/dev/disk/by-partlabel/hassos-kernel0
            bootname=A
            [slot.rootfs.0]
            device=/dev/disk/by-partlabel/hassos-system0
            parent=kernel.0
            """.utf8))
        #expect(config.bootloader == "grub" && config.grubenv == "/mnt/boot/EFI/BOOT/grubenv" && config.statusFile == "/mnt/data/rauc.db")
        #expect(config.slots.map(\.name) == ["kernel.0", "rootfs.0"])
        #expect(config.slots[0].bootname == "A" && config.slots[1].parent == "kernel.0" && config.slots[1].bootname == nil)
    }

    @Test func parsesFwEnvConfigAndAutoboot() {
        let copies = FwEnvConfig.parse(Array("# comment\n/dev/mmcblk0 0x400000 0x4000 0x200\n/boot/uboot.env 16384 16384\n/third 0 0x4000\n".utf8))
        #expect(copies == [FwEnvConfig.Copy(device: "/dev/mmcblk0", offset: 0x400000, size: 0x4000),
                           FwEnvConfig.Copy(device: "/boot/uboot.env", offset: 16384, size: 16384)])
        #expect(FwEnvConfig.parse(Array("/dev/mmcblk0 0 0x80000000\n/dev/sda zero 0x4000\n".utf8)).isEmpty)
        #expect(FwEnvConfig.isWholeDisk("/dev/mmcblk0") && FwEnvConfig.isWholeDisk("/dev/nvme0n1") && FwEnvConfig.isWholeDisk("/dev/sda"))
        #expect(!FwEnvConfig.isWholeDisk("/dev/mmcblk0boot0") && !FwEnvConfig.isWholeDisk("/dev/mmcblk0p1") && !FwEnvConfig.isWholeDisk("/dev/sda2"))

        let autoboot = RaspberryPiAutoboot.parse(Array("tryboot_a_b=1\nboot_partition=2\n[pi4]\nboot_partition=9\n[tryboot]\nboot_partition=3\n".utf8))
        #expect(autoboot == RaspberryPiAutoboot(bootPartition: 2, trybootPartition: 3, trybootAB: true, otherSections: ["pi4"]))
    }

    @Test func decodesGPTSlotBits() {
        // Legacy BIOS bootable (bit 2) and the Microsoft basic-data read-only/hidden bits (60, 62) are no slot bits.
        #expect(GPTSlotAttributes(attributes: 0x5000_0000_0000_0004) == nil)
        let bits = GPTSlotAttributes(attributes: 0x0125_0000_0000_0000)
        #expect(bits == GPTSlotAttributes(priority: 5, tries: 2, successful: true))
        #expect(GPTSlotAttributes(priority: 0, tries: 5, successful: true).isBootable == false)
        #expect(GPTSlotAttributes(priority: 3, tries: 0, successful: false).isBootable == false)
    }

    /// HAOS's own system.conf: bootname on the kernel slot, the root its child; HAOS's grub.cfg
    /// rule (X_TRY<3) on a hassos disk.
    @Test func haosSystemConfFindsTheChildRootSlot() throws {
        let disk = haosDisk(grub: "ORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=1\n", slotB: true)
        let conf = """
            [system]
            bootloader=grub
            grubenv=/mnt/boot/EFI/BOOT/grubenv
            [slot.kernel.0]
            device=/dev/disk/by-partlabel/hassos-kernel0
            bootname=A
            [slot.rootfs.0]
            device=/dev/disk/by-partlabel/hassos-system0
            parent=kernel.0
            [slot.kernel.1]
            device=/dev/disk/by-partlabel/hassos-kernel1
            bootname=B
            [slot.rootfs.1]
            device=/dev/disk/by-partlabel/hassos-system1
            parent=kernel.1
            """
        for index in [3, 5] { disk.filesystems[index]?.addFile("/etc/rauc/system.conf", conf) }
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 5)
        #expect(plan.root.reason.contains("HAOS's grub.cfg rule: X_OK=1 and X_TRY<3"), "\(plan.root.reason)")
        #expect(plan.root.reason.contains("ORDER=B A, B_OK=1, B_TRY=1"), "\(plan.root.reason)")
        #expect(plan.warnings == [])
    }

    /// EFI: the NVRAM is not on the disk, said so; a `rauc.slot=` on the boot partition's command
    /// line then names the slot.
    @Test func efiBackendFallsBackToTheCommandLine() throws {
        let disk = Self.raucDisk(bootloader: "efi", boot: ["/cmdline.txt": "console=ttyS0 rauc.slot=B\n"])
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 4)
        #expect(plan.root.reason.contains("/cmdline.txt on partition 1 (boot): rauc.slot=B"), "\(plan.root.reason)")
        #expect(plan.warnings.contains { $0.contains("BootOrder, BootNext") && $0.contains("NVRAM, not on the disk") }, "\(plan.warnings)")
    }

    /// barebox-state is not read: said so, and the generic fallback (first of several roots) warns.
    @Test func bareboxStateIsNotRead() throws {
        let plan = try Planner.plan(Self.raucDisk(bootloader: "barebox"))
        #expect(plan.root.partition == 3)
        #expect(plan.warnings.contains { $0.contains("barebox-state is not read") }, "\(plan.warnings)")
        #expect(plan.warnings.contains { $0.contains("no bootloader state chose one") }, "\(plan.warnings)")
    }

    /// RAUC U-Boot state pointing at slot B, whose partition holds no root: a warning and slot A.
    @Test func stateAtASlotWithoutRootWarnsAndFallsBack() throws {
        let env = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=B A", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"], size: 0x4000)
        let plan = try Planner.plan(Self.raucDisk(bootloader: "uboot", env: env, emptyB: true))
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("BOOT_ORDER=B A, BOOT_B_LEFT=3 (slot B holds no root), BOOT_A_LEFT=3"), "\(plan.root.reason)")
        #expect(plan.warnings.contains { $0.contains("slot B has no valid root filesystem") }, "\(plan.warnings)")
    }

    /// Both slots out of tries: RAUC's boot script resets the counters and boots the first of
    /// BOOT_ORDER, with a warning.
    @Test func allSlotsExhaustedBootsTheFirstOfTheOrder() throws {
        let env = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=B A", "BOOT_A_LEFT=0", "BOOT_B_LEFT=0"], size: 0x4000)
        let plan = try Planner.plan(Self.raucDisk(bootloader: "uboot", env: env))
        #expect(plan.root.partition == 4)
        #expect(plan.warnings.contains { $0.hasSuffix("BOOT_ORDER=B A with no tries left on any slot: RAUC's example boot script resets the counters and boots the first slot, B") }, "\(plan.warnings)")
    }

    /// fw_env.config naming the whole disk (the raw gap before the first partition), a redundant
    /// pair: the newer copy (flags 5 over 4) is read.
    @Test func fwEnvConfigReadsTheRawGap() throws {
        let disk = Self.raucDisk(bootloader: "uboot", fwEnv: "/dev/mmcblk0 0x2000 0x2000\n/dev/mmcblk0 0x4000 0x2000\n")
        let older = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=A B", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"], size: 0x2000, redundant: true, flags: 4)
        let newer = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=B A", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"], size: 0x2000, redundant: true, flags: 5)
        disk.wholeDisk = [UInt8](repeating: 0, count: 0x2000) + newer + older
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 4)
        #expect(plan.root.reason.contains("on the disk (/dev/mmcblk0) at 0x2000 (redundant copy, newer: flags 5 vs 4), named by /etc/fw_env.config"), "\(plan.root.reason)")
        #expect(plan.warnings == [])
    }

    /// A redundant pair whose newer copy was torn by a power cut (bad CRC): the older copy boots,
    /// and the reason says the other copy is not valid.
    @Test func tornRedundantCopyFallsBackToTheOlder() throws {
        let disk = Self.raucDisk(bootloader: "uboot", fwEnv: "/dev/mmcblk0 0x0 0x2000\n/dev/mmcblk0 0x2000 0x2000\n")
        var newer = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=B A", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"], size: 0x2000, redundant: true, flags: 7)
        newer[0x40] ^= 0xFF
        disk.wholeDisk = BootEnvironmentTests.ubootEnv(["BOOT_ORDER=A B", "BOOT_A_LEFT=3", "BOOT_B_LEFT=3"], size: 0x2000, redundant: true, flags: 6) + newer
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("on the disk (/dev/mmcblk0) at 0x0 (the other redundant copy is not valid)"), "\(plan.root.reason)")
    }

    /// A U-Boot double-copy device (SWUpdate, Mender): `/uboot.env` holding `env` on a vfat
    /// partition 1, root copies on partitions 2 and 3.
    static func doubleCopyDisk(env: [String]) -> FakeDisk {
        let disk = FakeDisk()
        let boot = MemoryFileSystem(formatName: "vfat")
        boot.addFile("/uboot.env", BootEnvironmentTests.ubootEnv(env, size: 0x4000))
        disk.add(PlanPartition(index: 1, fsType: "vfat", size: 8 << 20), fs: boot)
        disk.add(PlanPartition(index: 2, fsType: "ext4", size: 16 << 20), fs: linuxRoot("a"))
        disk.add(PlanPartition(index: 3, fsType: "ext4", size: 16 << 20), fs: linuxRoot("b"))
        return disk
    }

    /// SWUpdate: an unconditional `setenv rootpart 2` in altbootcmd names the rollback target.
    @Test func swupdateRollbackByAltbootcmd() throws {
        let disk = Self.doubleCopyDisk(env: ["rootpart=3", "upgrade_available=1", "bootcount=4", "bootlimit=3",
                                             "altbootcmd=setenv rootpart 2; setenv upgrade_available 0; saveenv; run bootcmd"])
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 2)
        #expect(plan.root.reason == "SWUpdate (U-Boot double copy) /uboot.env on partition 1: rootpart=3, upgrade_available=1, bootcount=4, bootlimit=3: the trial boot failed (bootcount reached bootlimit), so U-Boot runs altbootcmd, which sets rootpart=2")
    }

    /// Mender during a trial boot that already used its one try (bootlimit=1): the next boot runs
    /// altbootcmd (Mender's is conditional), back to the other root.
    @Test func menderTrialRollsBack() throws {
        let disk = Self.doubleCopyDisk(env: ["mender_boot_part=3", "upgrade_available=1", "bootcount=1", "bootlimit=1",
                                             "altbootcmd=run mender_altbootcmd; run bootcmd"])
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 2)
        #expect(plan.root.reason == "/uboot.env on partition 1: mender_boot_part=3, upgrade_available=1, bootcount=1, bootlimit=1: the trial boot failed (bootcount reached bootlimit), so U-Boot runs altbootcmd (switching to the other copy, partition 2, as the double-copy integrations do)")
    }

    /// Hostile fw_env.config lines: an offset that overflows, a copy past a partition's end, an
    /// MTD device: no crash, no allocation beyond the copy size, one warning naming each problem.
    @Test func hostileFwEnvConfigIsAWarning() throws {
        let config = "/dev/disk/by-partlabel/uboot-env 0xFFFFFFFFFFFFF000 0x4000\n/dev/mtd3 0x0 0x4000\n"
        let disk = Self.raucDisk(bootloader: "uboot", fwEnv: config)
        let plan = try Planner.plan(disk)
        let warning = try #require(plan.warnings.first { $0.hasPrefix("/etc/fw_env.config on partition 3 (rootfs-a) names no readable U-Boot environment") })
        #expect(warning.hasSuffix("partition 2 (uboot-env) at 0xfffffffffffff000: more than 64 MiB into the partition, not read; /dev/mtd3: not a partition or the whole disk of this image"), "\(warning)")
        #expect(plan.warnings.contains { $0.contains("no U-Boot environment found") }, "\(plan.warnings)")
    }

    /// Mender's layout: /etc/fw_env.config is a symlink into /data (a partition fstab mounts),
    /// naming an environment in the raw gap before p1; `mender_boot_part=3` there.
    @Test func fwEnvConfigSymlinkIntoAnotherPartition() throws {
        let disk = FakeDisk()
        for index in [2, 3] {
            let root = linuxRoot("root\(index)")
            root.addSymlink("/etc/fw_env.config", target: "/data/u-boot/fw_env.config")
            root.addFile("/etc/fstab", "/dev/mmcblk0p4 /data auto defaults 0 0\n")
            disk.add(PlanPartition(index: index, fsType: "ext4", size: 16 << 20), fs: root)
        }
        let data = MemoryFileSystem(formatName: "ext4")
        data.addFile("/u-boot/fw_env.config", "/dev/mmcblk0 0x400000 0x4000\n")
        disk.add(PlanPartition(index: 4, fsType: "ext4", size: 16 << 20), fs: data)
        disk.wholeDisk = [UInt8](repeating: 0, count: 0x400000)
            + BootEnvironmentTests.ubootEnv(["mender_boot_part=3", "upgrade_available=0"], size: 0x4000)
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason == "U-Boot environment on the disk (/dev/mmcblk0) at 0x400000, named by /etc/fw_env.config -> /data/u-boot/fw_env.config (/u-boot/fw_env.config on partition 4): mender_boot_part=3")
        #expect(plan.warnings == [])
    }

    /// ChromeOS: the bits sit on KERN-A/KERN-B, the roots are ROOT-A/ROOT-B; a higher-priority
    /// slot C whose partition holds nothing is passed over with a warning.
    @Test func chromeOSKernelSlotsBootTheirRoots() throws {
        let disk = FakeDisk()
        disk.add(PlanPartition(index: 2, name: "KERN-A", size: 16 << 20, slot: GPTSlotAttributes(priority: 1, tries: 0, successful: true)))
        disk.add(PlanPartition(index: 3, name: "ROOT-A", fsType: "ext4", size: 64 << 20), fs: linuxRoot("a"))
        disk.add(PlanPartition(index: 4, name: "KERN-B", size: 16 << 20, slot: GPTSlotAttributes(priority: 2, tries: 6, successful: false)))
        disk.add(PlanPartition(index: 5, name: "ROOT-B", fsType: "ext4", size: 64 << 20), fs: linuxRoot("b"))
        disk.add(PlanPartition(index: 6, name: "KERN-C", size: 16 << 20, slot: GPTSlotAttributes(priority: 3, tries: 0, successful: true)))
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 5)
        #expect(plan.root.reason.hasSuffix("; partition 6 (KERN-C) holds no root (a trial boot: gptprio.next decrements its tries); kernel slot KERN-B boots partition 5 (ROOT-B) (ChromeOS KERN-X/ROOT-X)"), "\(plan.root.reason)")
        #expect(plan.warnings.count == 1 && plan.warnings[0].hasSuffix("partition 6 (KERN-C) would boot but holds no Linux root; trying the next slot"), "\(plan.warnings)")
    }

    /// autoboot.txt without boot_partition: the firmware stays on its own partition, whose
    /// cmdline.txt names the root; a boot partition without cmdline.txt is a warning.
    @Test func autobootWithoutBootPartition() throws {
        func disk(_ autoboot: String) -> FakeDisk {
            let disk = FakeDisk()
            let boot = MemoryFileSystem(formatName: "vfat")
            boot.addFile("/autoboot.txt", autoboot)
            boot.addFile("/cmdline.txt", "root=/dev/mmcblk0p3 rootwait\n")
            disk.add(PlanPartition(index: 1, fsType: "vfat", size: 8 << 20), fs: boot)
            disk.add(PlanPartition(index: 2, fsType: "ext4", size: 16 << 20), fs: linuxRoot("a"))
            disk.add(PlanPartition(index: 3, fsType: "ext4", size: 16 << 20), fs: linuxRoot("b"))
            return disk
        }
        let plan = try Planner.plan(disk("[all]\ntryboot_a_b=1\n"))
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason == "Raspberry Pi firmware /autoboot.txt on partition 1: [all] tryboot_a_b=1 boot_partition=unset (no boot_partition: the firmware boots from partition 1); /cmdline.txt on partition 1: root=/dev/mmcblk0p3")

        let other = try Planner.plan(disk("[all]\nboot_partition=2\n"))
        #expect(other.warnings.first?.hasSuffix("partition 2 has no cmdline.txt; the root is not known from it") == true, "\(other.warnings)")
    }

    /// GPT bits choose B; the boot partition's cmdline.txt names A: the bits win, with a warning.
    @Test func disagreeingConventionsWarn() throws {
        let disk = FakeDisk()
        let boot = MemoryFileSystem(formatName: "vfat")
        boot.addFile("/cmdline.txt", "root=PARTLABEL=ROOT-A\n")
        disk.add(PlanPartition(index: 1, name: "EFI", fsType: "vfat", size: 8 << 20), fs: boot)
        disk.add(PlanPartition(index: 2, name: "ROOT-A", fsType: "ext4", size: 16 << 20,
                               slot: GPTSlotAttributes(priority: 1, tries: 0, successful: true)), fs: linuxRoot("a"))
        disk.add(PlanPartition(index: 3, name: "ROOT-B", fsType: "ext4", size: 16 << 20,
                               slot: GPTSlotAttributes(priority: 2, tries: 0, successful: true)), fs: linuxRoot("b"))
        let plan = try Planner.plan(disk)
        #expect(plan.root.partition == 3)
        #expect(plan.warnings == ["cmdline.txt points at partition 2 (ROOT-A) (cmdline.txt root=PARTLABEL=ROOT-A), but GPT attribute bits chose partition 3 (ROOT-B); the GPT attribute bits choice is kept"])
    }
}
