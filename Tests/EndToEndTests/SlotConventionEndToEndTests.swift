import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The A/B slot conventions beyond HAOS on disks whose state the conventions' own tools wrote
/// (images/disks/rauc-uboot.sh, rauc-grub.sh, swupdate.sh, rpi-tryboot.sh, gpt-prio.sh, flatcar.sh): each
/// disk after an update to slot B, and its `.failed` copy after the update failed (tries
/// exhausted), planned through `fwassemble plan --json` to the right root, and assembled by
/// `fwassemble assemble` into an archive whose os-release is that slot's release (read by GNU tar).
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct SlotConventionEndToEndTests {
    struct Expected: CustomTestStringConvertible, Sendable {
        var image: String
        var root: Int
        /// The slot's release (VERSION_ID of its os-release).
        var version: String
        /// Facts the reason must state (where the state was read and what it said).
        var reason: [String]
        var testDescription: String { image }
    }

    static let raucUBoot = "RAUC (/etc/rauc/system.conf on partition 3 (rootfs-a): bootloader=uboot; rootfs.0 bootname=A device=/dev/disk/by-partlabel/rootfs-a, rootfs.1 bootname=B device=/dev/disk/by-partlabel/rootfs-b): "
    static let raucUBootStatus = "RAUC status /data/rauc.status (/rauc.status on partition 5 (data)): rootfs.0: bundle.version=1.0, installed.timestamp=2023-11-14T22:13:20Z, status=ok; rootfs.1: bundle.version=2.0, installed.timestamp=2023-11-20T08:00:00Z, status=ok"
    static let raucGrub = "RAUC (/etc/rauc/system.conf on partition 2 (rootfs-a): bootloader=grub; rootfs.0 bootname=A device=/dev/disk/by-partlabel/rootfs-a, rootfs.1 bootname=B device=/dev/disk/by-partlabel/rootfs-b) (RAUC's grub.cfg rule: X_OK=1 and X_TRY=0): /boot/efi/EFI/BOOT/grubenv (/EFI/BOOT/grubenv on partition 1 (esp)): ORDER=B A, "
    static let swupdate = "SWUpdate (U-Boot double copy) U-Boot environment /boot/uboot.env (/uboot.env on partition 1 (BOOT)) at 0x0, named by /etc/fw_env.config on partition 2 (rootfs2): rootpart=3, ustate=1, upgrade_available=1, "
    static let tryboot = "Raspberry Pi firmware /autoboot.txt on partition 1 (CONFIG): [all] tryboot_a_b=1 "
    static let gpt = "GPT attribute bits (highest priority with successful=1 or tries>0, as GRUB's gptprio.next and ChromeOS vboot choose): partition 2 (ROOT-A) priority=1 tries=0 successful=1; "

    static let cases: [Expected] = [
        Expected(image: "rauc-uboot.img", root: 4, version: "2.0", reason: [
            raucUBoot + "U-Boot environment in partition 2 (uboot-env) at 0x0 (redundant copy, newer: flags 2 vs 1), named by /etc/fw_env.config on partition 3 (rootfs-a): BOOT_ORDER=B A, BOOT_B_LEFT=3; " + raucUBootStatus]),
        Expected(image: "rauc-uboot.failed.img", root: 3, version: "1.0", reason: [
            raucUBoot + "U-Boot environment in partition 2 (uboot-env) at 0x4000 (redundant copy, newer: flags 3 vs 2), named by /etc/fw_env.config on partition 3 (rootfs-a): BOOT_ORDER=B A, BOOT_B_LEFT=0 (no tries left), BOOT_A_LEFT=3; " + raucUBootStatus]),
        Expected(image: "rauc-grub.img", root: 3, version: "2.0", reason: [raucGrub + "B_OK=1, B_TRY=0; RAUC status /data/rauc/central.raucs (/rauc/central.raucs on partition 4 (data)): rootfs.0: bundle.version=1.0"]),
        Expected(image: "rauc-grub.failed.img", root: 2, version: "1.0", reason: [raucGrub + "B_OK=1, B_TRY=1 (not bootable), A_OK=1, A_TRY=0; RAUC status"]),
        Expected(image: "swupdate.img", root: 3, version: "2.0", reason: [swupdate + "bootcount=1, bootlimit=3"]),
        Expected(image: "swupdate.failed.img", root: 2, version: "1.0", reason: [
            swupdate + "bootcount=3, bootlimit=3: the trial boot failed (bootcount reached bootlimit), so U-Boot runs altbootcmd (switching to the other copy, partition 2 (rootfs2), as the double-copy integrations do)"]),
        Expected(image: "rpi-tryboot.img", root: 6, version: "2.0", reason: [
            tryboot + "boot_partition=3 ([tryboot] boot_partition=2 applies only to a trial boot", "/cmdline.txt on partition 3 (BOOT-B): root=PARTUUID=7e57b007-06"]),
        Expected(image: "rpi-tryboot.failed.img", root: 5, version: "1.0", reason: [
            tryboot + "boot_partition=2 ([tryboot] boot_partition=3 applies only to a trial boot", "/cmdline.txt on partition 2 (BOOT-A): root=PARTUUID=7e57b007-05"]),
        Expected(image: "gpt-prio.img", root: 3, version: "2.0", reason: [gpt + "partition 3 (ROOT-B) priority=2 tries=1 successful=0 (a trial boot: gptprio.next decrements its tries)"]),
        Expected(image: "gpt-prio.failed.img", root: 2, version: "1.0", reason: [gpt + "partition 3 (ROOT-B) priority=2 tries=0 successful=0"]),
    ]

    @Test(arguments: cases)
    func planAndAssembleChooseTheSlot(_ e: Expected) throws {
        let path = try TestImages.path(e.image)
        let r = try CLI.run(["plan", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try JSONDecoder().decode(Plan.self, from: r.stdout)
        #expect(plan.root.partition == e.root)
        #expect(plan.root.filesystem == "ext4")
        for fact in e.reason { #expect(plan.root.reason.contains(fact), "\(plan.root.reason)") }
        #expect(plan.warnings == [])
        #expect(plan.mounts.first?.partition == e.root && plan.mounts.first?.where == "/")

        let scratch = try ScratchDir()
        let archive = scratch.path + "/out.rootfs.tar.gz"
        let a = try CLI.run(["assemble", path, "-o", archive, "--quiet"])
        #expect(a.status == 0, "\(a.stderr)")
        let osRelease = String(decoding: try TestImages.run(["tar", "-xzOf", archive, "./usr/lib/os-release"]), as: UTF8.self)
        #expect(osRelease.contains("VERSION_ID=\(e.version)\n"), "\(osRelease)")
    }

    /// Flatcar: the shared ROOT at /, the /usr slot the GPT bits choose at /usr (read-only), and
    /// /oem from the unit that lives on that /usr slot and is enabled in ROOT's /etc.
    @Test(arguments: [("flatcar.img", 4, "2.0", "priority=2 tries=1 successful=0 (a trial boot: gptprio.next decrements its tries)"),
                      ("flatcar.failed.img", 3, "1.0", "priority=2 tries=0 successful=0")])
    func flatcarMountsTheChosenUsrSlot(_ image: String, _ usr: Int, _ version: String, _ slotB: String) throws {
        let path = try TestImages.path(image)
        let r = try CLI.run(["plan", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try JSONDecoder().decode(Plan.self, from: r.stdout)
        #expect(plan.profile == "flatcar" && plan.root.partition == 9 && plan.warnings == [])
        let reason = "Flatcar: /usr slot chosen by GPT attribute bits (highest priority with successful=1 or tries>0, GRUB's gptprio.next): "
            + "partition 3 (USR-A) priority=1 tries=0 successful=1; partition 4 (USR-B) \(slotB)"
        #expect(plan.mounts.map { [$0.where, $0.partition.map(String.init) ?? "-", $0.options, $0.declaredBy].joined(separator: " | ") } == [
            "/ | 9 |  | the only partition holding a Linux root",
            "/usr | \(usr) | ro | \(reason)",
            "/oem | 6 |  | /usr/lib/systemd/system/oem.mount",
        ])
        let scratch = try ScratchDir()
        let archive = scratch.path + "/out.rootfs.tar.gz"
        let a = try CLI.run(["assemble", path, "-o", archive, "--quiet"])
        #expect(a.status == 0, "\(a.stderr)")
        let osRelease = String(decoding: try TestImages.run(["tar", "-xzOf", archive, "./usr/lib/os-release"]), as: UTF8.self)
        #expect(osRelease.contains("ID=flatcar\nVERSION_ID=\(version)\n"), "\(osRelease)")
        let oem = String(decoding: try TestImages.run(["tar", "-xzOf", archive, "./oem/oem-release"]), as: UTF8.self)
        #expect(oem == "oem config\n")
    }

    /// The archive of each slot disk equals the namespace the kernel builds from its plan (the
    /// chosen slot and the partitions its fstab/units mount, loop-mounted read-only; vfat left
    /// out), every field but hardlink grouping.
    @Test(.enabled(if: ["ext4", "ext2"].allSatisfy(TestImages.canLoopMount), "needs root and loop mounts"),
          arguments: cases.map(\.image) + ["flatcar.img", "flatcar.failed.img"])
    func archiveEqualsKernelNamespace(_ image: String) throws {
        try ProfileEndToEndTests.compareWithKernel(image, minimum: 8)
    }

    /// `inspect --json` shows the attribute bits sgdisk set, decoded (new key `slot_attributes`),
    /// beside the raw `attributes` that sgdisk prints as "Attribute flags".
    @Test func inspectShowsTheSlotAttributes() throws {
        let path = try TestImages.path("gpt-prio.img")
        let r = try CLI.run(["inspect", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let partitions = try #require(object["partitions"] as? [[String: Any]])
        for (index, expected) in [(2, (1, 0, true)), (3, (2, 1, false))] {
            let p = try #require(partitions.first { $0["index"] as? Int == index })
            let slot = try #require(p["slot_attributes"] as? [String: Any])
            #expect(slot["priority"] as? Int == expected.0 && slot["tries"] as? Int == expected.1 && slot["successful"] as? Bool == expected.2, "\(slot)")
            let sgdisk = String(decoding: try TestImages.run(["sgdisk", "-i", String(index), path]), as: UTF8.self)
            let flags = sgdisk.split(separator: "\n").first { $0.hasPrefix("Attribute flags:") }?.split(separator: " ").last
            #expect(flags.flatMap { UInt64($0, radix: 16) } == (p["attributes"] as? NSNumber)?.uint64Value)
        }
        let esp = try #require(partitions.first { $0["index"] as? Int == 1 })
        #expect(esp["slot_attributes"] == nil)
        let text = try CLI.run(["inspect", path])
        #expect(String(decoding: text.stdout, as: UTF8.self).contains(
            "\nGPT slot attribute bits: 2 (ROOT-A) priority=1 tries=0 successful=1; 3 (ROOT-B) priority=2 tries=1 successful=0"))
    }
}
