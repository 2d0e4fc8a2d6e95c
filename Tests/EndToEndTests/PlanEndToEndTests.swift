import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `Disk.plan()` and `fwassemble plan --json` on the realistic firmware disks built by
/// images/disks/{haos-full,haos-slotb,haos-mbr-full,rpi-full,mender,debian-gpt}.sh: exactly the
/// mounts each recipe's boot configuration performs, the skipped entries with their reasons, and
/// the root slot with the bootloader facts that chose it.
@Suite struct PlanEndToEndTests {

    /// One mount as a comparable line: where, kind, partition, fstype, options, what, declared_by.
    static func line(_ m: PlannedMount) -> String {
        [m.where, m.kind.rawValue, m.partition.map(String.init) ?? "-", m.fstype ?? "-", m.options, m.what ?? "-", m.declaredBy]
            .joined(separator: " | ")
    }

    static let units = "/usr/lib/systemd/system/"

    /// The HAOS mounts (same unit set on every HAOS disk): partitions by number, root reason.
    static func haosMounts(root: Int, rootFS: String, reason: String, boot: Int, data: Int, overlay: Int) -> [String] {
        func bind(_ where_: String, _ what: String, _ unit: String) -> String {
            "\(where_) | bind | - | - | bind | \(what) | \(units)\(unit).mount"
        }
        return [
            "/ | partition | \(root) | \(rootFS) |  | - | \(reason)",
            "/mnt/boot | partition | \(boot) | vfat | sync | - | \(units)mnt-boot.mount",
            "/mnt/data | partition | \(data) | ext4 | commit=30 | - | \(units)mnt-data.mount",
            "/mnt/overlay | partition | \(overlay) | ext4 |  | - | \(units)mnt-overlay.mount",
            bind("/etc/hostname", "/mnt/overlay/etc/hostname", "etc-hostname"),
            bind("/etc/hosts", "/mnt/overlay/etc/hosts", "etc-hosts"),
            bind("/etc/modules-load.d", "/mnt/overlay/etc/modules-load.d", "etc-modules\\x2dload.d"),
            bind("/root/.ssh", "/mnt/overlay/root/.ssh", "root-.ssh"),
            bind("/etc/NetworkManager/system-connections", "/mnt/overlay/etc/NetworkManager/system-connections",
                 "etc-NetworkManager-system\\x2dconnections"),
            bind("/var/lib/docker", "/mnt/data/docker", "var-lib-docker"),
            bind("/var/log/journal", "/mnt/data/logs", "var-log-journal"),
        ]
    }

    static let haosSkipped = [
        "/mnt/config | unit not enabled | \(units)mnt-config.mount",
        "/tmp | volatile tmpfs | \(units)tmp.mount",
        "/var | volatile tmpfs | \(units)var.mount",
    ]

    struct Expected: Sendable, CustomTestStringConvertible {
        var image: String
        var root: Int
        var reason: String
        var profile: String
        var mounts: [String]
        var skipped: [String]
        var warnings: [String] = []
        var testDescription: String { image }
    }

    static let grub = "/EFI/BOOT/grubenv on partition 1 (hassos-boot)"

    static let cases: [Expected] = [
        Expected(image: "haos-full.img", root: 3, reason: "\(grub): ORDER=A B, A_OK=1, A_TRY=0", profile: "haos",
                 mounts: haosMounts(root: 3, rootFS: "erofs", reason: "\(grub): ORDER=A B, A_OK=1, A_TRY=0", boot: 1, data: 8, overlay: 7),
                 skipped: haosSkipped),
        Expected(image: "haos-slotb.img", root: 5, reason: "\(grub): ORDER=B A, B_OK=1, B_TRY=0", profile: "haos",
                 mounts: haosMounts(root: 5, rootFS: "squashfs", reason: "\(grub): ORDER=B A, B_OK=1, B_TRY=0", boot: 1, data: 8, overlay: 7),
                 skipped: haosSkipped),
        Expected(image: "haos-mbr-full.img", root: 6, reason: "U-Boot environment in partition 9: BOOT_ORDER=B A, BOOT_B_LEFT=0 (no tries left), BOOT_A_LEFT=3", profile: "haos",
                 mounts: haosMounts(root: 6, rootFS: "erofs", reason: "U-Boot environment in partition 9: BOOT_ORDER=B A, BOOT_B_LEFT=0 (no tries left), BOOT_A_LEFT=3",
                                    boot: 1, data: 4, overlay: 3),
                 skipped: haosSkipped),
        Expected(image: "rpi-full.img", root: 2, reason: "cmdline.txt root=PARTUUID=1a2b3c4d-02", profile: "generic",
                 mounts: ["/ | partition | 2 | ext4 |  | - | cmdline.txt root=PARTUUID=1a2b3c4d-02",
                          "/boot/firmware | partition | 1 | vfat |  | - | /etc/fstab:2"],
                 skipped: ["/proc | virtual proc | /etc/fstab:1"]),
        Expected(image: "mender.img", root: 3, reason: "/uboot.env on partition 1 (BOOT): mender_boot_part=3", profile: "mender",
                 mounts: ["/ | partition | 3 | ext4 |  | - | /uboot.env on partition 1 (BOOT): mender_boot_part=3",
                          "/uboot | partition | 1 | vfat | sync | - | /etc/fstab:3",
                          "/data | partition | 4 | ext4 |  | - | /etc/fstab:4"],
                 skipped: ["/proc | virtual proc | /etc/fstab:2"]),
        Expected(image: "debian-gpt.img", root: 2, reason: "GPT type GUID is the Discoverable Partitions root for x86-64", profile: "generic",
                 mounts: ["/ | partition | 2 | ext4 |  | - | GPT type GUID is the Discoverable Partitions root for x86-64",
                          "/var | partition | 3 | ext4 |  | - | /etc/fstab:5",
                          "/home | partition | 4 | ext4 | nodev | - | /etc/fstab:6",
                          "/boot/efi | partition | 1 | vfat | umask=0077 | - | /etc/fstab:4",
                          "/srv/data | partition | 5 | ext4 | nosuid,nodev,noexec | - | /etc/systemd/system/srv-data.mount"],
                 skipped: ["/mnt/backup | noauto | /etc/fstab:7",
                           "/mnt/extra | unit not enabled | /usr/lib/systemd/system/mnt-extra.mount",
                           "/mnt/masked | unit masked | /etc/systemd/system/mnt-masked.mount",
                           "/mnt/other | Where= disagrees with the unit name | /etc/systemd/system/mnt-wrong.mount",
                           "/proc | virtual proc | /etc/fstab:9",
                           "/srv/www | bind source /srv/missing missing | /etc/fstab:8",
                           "/tmp | volatile tmpfs | /etc/fstab:10"],
                 warnings: ["/etc/systemd/system/mnt-wrong.mount: Where=/mnt/other does not match the unit name (/mnt/wrong); systemd refuses such a unit; skipped",
                            "/etc/fstab:8: bind source /srv/missing does not exist; /srv/www not bound"]),
    ]

    static func check(_ plan: Plan, _ e: Expected) {
        #expect(plan.root.partition == e.root)
        #expect(plan.root.reason == e.reason)
        #expect(plan.profile == e.profile)
        #expect(plan.mounts.map(line) == e.mounts)
        #expect(plan.skipped.map { [$0.where, $0.reason, $0.declaredBy ?? "-"].joined(separator: " | ") } == e.skipped)
        #expect(plan.warnings == e.warnings)
    }

    @Test(arguments: cases)
    func facadePlan(_ e: Expected) throws {
        let plan = try Disk(path: try TestImages.path(e.image)).plan()
        Self.check(plan, e)
        // The JSON document decodes back to the same plan.
        let decoded = try JSONDecoder().decode(Plan.self, from: Data(try plan.json().utf8))
        #expect(decoded == plan)
    }

    @Test(.enabled(if: CLI.path != nil, "fwassemble binary not built"), arguments: cases)
    func binaryPlanJSON(_ e: Expected) throws {
        let path = try TestImages.path(e.image)
        let r = try CLI.run(["plan", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try JSONDecoder().decode(Plan.self, from: r.stdout)
        Self.check(plan, e)
        // The field names, checked on the raw JSON.
        let object = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let root = try #require(object["root"] as? [String: Any])
        #expect(root["partition"] as? Int == e.root)
        let mounts = try #require(object["mounts"] as? [[String: Any]])
        #expect(mounts.allSatisfy { $0["where"] is String && $0["kind"] is String && $0["declared_by"] is String })
        #expect(object["skipped"] is [[String: Any]] && object["warnings"] is [String])
        // The readable form names every mount point too.
        let text = try CLI.run(["plan", path])
        #expect(text.status == 0)
        let out = String(decoding: text.stdout, as: UTF8.self)
        for m in plan.mounts { #expect(out.contains(m.where)) }
    }

    /// haos-slotb with B_TRY raised to 3 (in a copy of the disk, inside the grubenv block of the
    /// FAT boot partition): slot B is no longer bootable and slot A (partition 3) boots.
    @Test func slotBWithTriesExhaustedFallsBackToA() throws {
        let scratch = try ScratchDir()
        let copy = scratch.path + "/slotb-try3.img"
        try TestImages.run(["cp", "--sparse=always", try TestImages.path("haos-slotb.img"), copy])
        try Self.patchBootPartition(copy, ["\nB_TRY=0\n": "\nB_TRY=3\n"])

        let plan = try Disk(path: copy).plan()
        #expect(plan.root.partition == 3)
        #expect(plan.root.filesystem == "erofs")
        let reason = "\(Self.grub): ORDER=B A, B_OK=1, B_TRY=3 (not bootable), A_OK=1, A_TRY=0"
        #expect(plan.root.reason == reason)
        #expect(plan.mounts.first.map(Self.line) == "/ | partition | 3 | erofs |  | - | \(reason)")
    }

    /// haos-full with grubenv edited to prefer slot B (ORDER=B A, B_OK=1): slot B is all zeros, so
    /// it is passed over with a warning and slot A boots.
    @Test func zeroedSlotIsNeverChosen() throws {
        let scratch = try ScratchDir()
        let copy = scratch.path + "/prefer-b.img"
        try TestImages.run(["cp", "--sparse=always", try TestImages.path("haos-full.img"), copy])
        try Self.patchBootPartition(copy, ["ORDER=A B\n": "ORDER=B A\n", "\nB_OK=0\n": "\nB_OK=1\n"])
        let plan = try Disk(path: copy).plan()
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason == "\(Self.grub): ORDER=B A, B_OK=1, B_TRY=0 (slot B holds no root), A_OK=1, A_TRY=0")
        #expect(plan.warnings.contains { $0.contains("slot B has no valid root filesystem") }, "\(plan.warnings)")
    }

    /// A 4 MiB ext4 root (mkfs.ext4 -d) in a partition sfdisk made 200 KiB smaller: the plan still
    /// mounts it and warns that the filesystem is cut short, as the kernel refuses it.
    @Test func filesystemLargerThanItsPartitionIsWarnedAbout() throws {
        let scratch = try ScratchDir()
        let lib = TestImages.repositoryRoot.appendingPathComponent("images/lib.sh").path
        try TestImages.run(["bash", "-c", """
            set -e; OUT=$1 WORK=$1; source "$2"; cd "$1"; minimal_root r
            truncate -s 4M fs.img; mkfs.ext4 -q -F -d r fs.img
            truncate -s 8M disk.img; printf 'start=2048, size=7800, type=83\n' | sfdisk -q disk.img
            dd if=fs.img of=disk.img bs=512 seek=2048 count=7800 conv=notrunc status=none
            """, "cut", scratch.path, lib])
        let plan = try Disk(path: scratch.path + "/disk.img").plan()
        #expect(plan.root.partition == 1)
        #expect(plan.warnings.contains("partition 1: its ext4 filesystem spans 4194304 bytes, more than the partition's 3993600: "
                                       + "what lies past the partition's end cannot be read (the kernel refuses to mount it)"), "\(plan.warnings)")
        // The same filesystem in a partition that holds it: no warning.
        let fits = try Disk(path: try TestImages.path("sample.img")).plan()
        #expect(!fits.warnings.contains { $0.contains("more than the partition's") }, "\(fits.warnings)")
    }

    /// Replaces byte strings (each found exactly once, same length) inside partition 1 of a disk.
    static func patchBootPartition(_ path: String, _ replacements: [String: String]) throws {
        let boot = try #require(try Disk(path: path).inspect().partitions.first { $0.index == 1 })
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: boot.start)
        let bytes = try #require(try handle.read(upToCount: Int(boot.size)))
        for (from, to) in replacements {
            try #require(from.utf8.count == to.utf8.count)
            let hit = try #require(bytes.range(of: Data(from.utf8)), "\(from) not found")
            #expect(bytes[hit.upperBound...].range(of: Data(from.utf8)) == nil, "\(from) appears once")
            try handle.seek(toOffset: boot.start + UInt64(hit.lowerBound - bytes.startIndex))
            try handle.write(contentsOf: Data(to.utf8))
        }
        try handle.synchronize()
    }

    /// The two slot roots really differ (os-release VERSION), so choosing the slot matters.
    @Test func slotsHoldDifferentReleases() throws {
        let disk = try Disk(path: try TestImages.path("haos-slotb.img"))
        let a = try disk.assembleRelease(root: "3")
        let b = try disk.assembleRelease(root: "5")
        #expect(a.contains("VERSION=\"13.2\""))
        #expect(b.contains("VERSION=\"12.4\""))
    }
}

extension Disk {
    /// /usr/lib/os-release of the namespace with a forced root, read through the facade's plan
    /// (the --root override) and the tar written by assemble.
    func assembleRelease(root: String) throws -> String {
        let scratch = try ScratchDir()
        let out = scratch.path + "/r.tar.gz"
        var request = AssembleRequest()
        request.output.output = out
        request.root = root
        _ = try assemble(request)
        let data = try TestImages.run(["tar", "-xzOf", out, "./usr/lib/os-release"])
        return String(decoding: data, as: UTF8.self)
    }
}
