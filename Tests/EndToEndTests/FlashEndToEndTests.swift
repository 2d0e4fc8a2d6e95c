import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// OpenWrt on raw flash (images/disks/openwrt-flash.sh): the NOR layout (squashfs, then a JFFS2
/// rootfs_data at the next erase block) and the NAND layout (UBI volumes rootfs and rootfs_data,
/// UBIFS) plan and assemble to the namespace of the disk-based OpenWrt profile.
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct FlashEndToEndTests {
    static func line(_ m: PlannedMount) -> String {
        [m.where, m.kind.rawValue, m.partition.map(String.init) ?? "-", m.offset.map(String.init) ?? "-", m.fstype ?? "-",
         m.declaredBy].joined(separator: " | ")
    }

    @Test("NOR: squashfs then JFFS2 rootfs_data at the next 64 KiB erase block")
    func norPlan() throws {
        let plan = try Disk(path: try TestImages.path("openwrt-nor.img")).plan()
        #expect(plan.profile == "openwrt" && plan.root.partition == 1 && plan.root.filesystem == "squashfs")
        let overlay = plan.mounts.filter { $0.where == "/overlay" }
        #expect(overlay.count == 2 && overlay.allSatisfy { $0.fstype == "jffs2" && $0.partition == 1 && ($0.offset ?? 0) % 65536 == 0 && $0.offset != nil },
                "\(plan.mounts.map(Self.line).joined(separator: "\n"))")
        #expect(plan.mounts.first { $0.kind == .overlay }?.upper == "/overlay/upper")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test("NAND: the UBI volumes rootfs (squashfs) and rootfs_data (UBIFS)")
    func nandPlan() throws {
        let disk = try Disk(path: try TestImages.path("openwrt-nand.img"))
        let inspection = try disk.inspect()
        #expect(inspection.table.type == "ubi")
        #expect(inspection.partitions.map { $0.name ?? "-" } == ["kernel", "rootfs", "rootfs_data"])
        #expect(inspection.partitions.map { $0.filesystem?.type ?? "-" } == ["-", "squashfs", "ubifs"])
        let plan = try disk.plan()
        #expect(plan.profile == "openwrt" && plan.root.partition == 2 && plan.root.filesystem == "squashfs")
        #expect(plan.mounts.map(Self.line) == [
            "/ | partition | 2 | - | squashfs | the only partition holding a Linux root",
            "/rom | partition | 2 | - | squashfs | OpenWrt: the squashfs, lower layer of the root overlay",
            "/overlay | partition | 3 | - | ubifs | OpenWrt: the UBI volume rootfs_data (partition 3)",
            "/ | overlay | - | - | overlay | OpenWrt mount_root: overlay of rootfs_data's upper/ over the squashfs",
            "/rom | partition | 2 | - | squashfs | OpenWrt: the squashfs after pivot_root",
            "/overlay | partition | 3 | - | ubifs | OpenWrt: the UBI volume rootfs_data (partition 3)",
        ], "\(plan.mounts.map(Self.line).joined(separator: "\n"))")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test("a UBIFS Linux wrote, dumped while mounted: inspect notes the replayed journal and needs_recovery; --no-replay reads the committed index",
          .enabled(if: FileManager.default.fileExists(atPath: TestImages.directory.appendingPathComponent("fs-flash-kernel-journal.img").path)))
    func kernelJournal() throws {
        let path = try TestImages.path("fs-flash-kernel-journal.img")
        let disk = try Disk(path: path)
        let inspection = try disk.inspect()
        #expect(inspection.partitions.first?.filesystem?.needsRecovery == true)
        #expect(inspection.table.warnings.count == 1 && inspection.table.warnings[0].hasPrefix("UBI volume 0: its UBIFS journal holds ")
                && inspection.table.warnings[0].contains("replayed in memory"), "\(inspection.table.warnings)")
        let (replayed, _) = try disk.openFileSystem(partition: "rootfs")
        let (committed, _) = try disk.openFileSystem(partition: "rootfs", replayJournal: false)
        #expect(try replayed.lookup("/etc/renamed") != nil && replayed.lookup("/etc/rename-me") == nil)
        #expect(try committed.lookup("/etc/renamed") == nil && committed.lookup("/etc/rename-me") != nil)
        let ls = try CLI.run(["ls", path, "/srv", "--no-replay"])
        #expect(ls.status == 0 && ls.stdoutText.split(separator: "\n").contains("olddir"), "\(ls.stdoutText) \(ls.stderr)")
        let lsReplayed = try CLI.run(["ls", path, "/srv"])
        #expect(lsReplayed.status == 0 && lsReplayed.stdoutText.split(separator: "\n").contains("newdir"), "\(lsReplayed.stdoutText)")
        let clean = try Disk(path: try TestImages.path("fs-flash-kernel-clean.img")).inspect()
        #expect(clean.partitions.first?.filesystem?.needsRecovery == false && clean.table.warnings.isEmpty, "\(clean.table.warnings)")
    }

    @Test("a kernel UBIFS dump whose base-head bud holds garbage: inspect and assemble's report name the bud LEB and byte",
          .enabled(if: FileManager.default.fileExists(atPath: TestImages.directory.appendingPathComponent("fs-flash-kernel-journal.img").path)))
    func damagedJournalReport() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try TestImages.path("fs-flash-kernel-journal.img"))))
        let (bud, at) = try #require(Self.baseBud(bytes))
        for i in at + 5000..<at + 5100 { bytes[i] ^= 0xA5 }   // its nodes take some 25 KiB
        let dir = try ScratchDir()
        let image = dir.path + "/damaged.img"
        try Data(bytes).write(to: URL(fileURLWithPath: image))
        let inspection = try Disk(path: image).inspect()
        #expect(inspection.table.warnings.contains { $0.hasPrefix("UBI volume 0: UBIFS journal: bud LEB \(bud) at byte ") },
                "\(inspection.table.warnings)")
        let r = try CLI.run(["assemble", image, "-o", dir.path + "/out.tar.gz", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONDecoder().decode(AssembleReport.self, from: Data(contentsOf: URL(fileURLWithPath: dir.path + "/out.tar.gz.report.json")))
        #expect(report.warnings.contains { $0.contains("UBIFS journal: bud LEB \(bud) at byte ") }, "\(report.warnings)")
    }

    /// The base journal head's bud (inodes and entries) of the UBIFS in volume 0 of a UBI dump (128 KiB PEBs), read
    /// from the raw bytes as UBI and UBIFS lay them out: the LEB number and the byte of the
    /// image where its journal nodes start.
    static func baseBud(_ bytes: [UInt8]) -> (lnum: UInt32, at: Int)? {
        func be32(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        func le32(_ at: Int) -> Int { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | Int($1) } }
        let peb = 128 << 10
        var lebs: [Int: (start: Int, sqnum: Int)] = [:]   // LEB -> its data's byte in the image
        for p in stride(from: 0, to: bytes.count, by: peb) where bytes[p..<p + 4] == Array("UBI#".utf8)[...] {
            let vid = p + be32(p + 16)
            guard bytes[vid..<vid + 4] == Array("UBI!".utf8)[...], be32(vid + 8) == 0 else { continue }
            let lnum = be32(vid + 12), sqnum = be32(vid + 44)
            if lebs[lnum].map({ $0.sqnum < sqnum }) ?? true { lebs[lnum] = (p + be32(p + 20), sqnum) }
        }
        guard let sb = lebs[0]?.start else { return nil }
        // the log LEB starting with the newest commit-start node (type 10), then its REF nodes (type 8)
        let logs = (3..<3 + le32(sb + 56)).compactMap { l in lebs[l].map { (l, $0.start) } }.filter { bytes[$0.1 + 20] == 10 }
        guard let log = logs.max(by: { le32($0.1 + 8) < le32($1.1 + 8) })?.1 else { return nil }
        var offset = 0
        while le32(log + offset) == 0x0610_1831 {
            if bytes[log + offset + 20] == 8, le32(log + offset + 32) == 1, let bud = lebs[le32(log + offset + 24)] {
                return (UInt32(le32(log + offset + 24)), bud.start + le32(log + offset + 28))
            }
            offset += (le32(log + offset + 16) + 7) & ~7
        }
        return nil
    }

    @Test("a whole-chip dump: UBI found after 1 MiB of bootloader, its volumes are the partitions")
    func chip() throws {
        let disk = try Disk(path: try TestImages.path("fs-ubi-chip.img"))
        let inspection = try disk.inspect()
        #expect(inspection.table.type == "ubi")
        #expect(inspection.table.warnings.first == "UBI starts at byte 1048576 of the dump (the MTD partitions before it are not read)")
        #expect(inspection.partitions.map { $0.filesystem?.type ?? "-" } == ["squashfs", "ubifs", "ubifs", "ubifs", "ubifs"])
        let (reader, _) = try disk.openFileSystem(partition: "data-zstd")
        #expect(try reader.readSmallFile(try #require(try reader.lookup("/etc/passwd"))) == Array("root:x:0:0:root:/root:/bin/sh\n".utf8))
    }

    @Test("assembled: rootfs_data's upper/ over the squashfs (changed, new, whited-out and, on NOR, opaque entries)",
          arguments: ["nor", "nand"])
    func assemble(layout: String) throws {
        let scratch = try ScratchDir()
        let archive = scratch.path + "/out.rootfs.tar.gz"
        let r = try CLI.run(["assemble", try TestImages.path("openwrt-\(layout).img"), "-o", archive, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let entries = try TarView.manifest(archive)
        let by = Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        #expect(by["etc/config/network"]?.crc32 == CRC.of("config interface lan\n\toption proto dhcp\n"))
        #expect(by["rom/etc/config/network"]?.crc32 == CRC.of("config interface loopback\n\toption proto static\n"))
        #expect(by["etc/banner"] == nil && by["rom/etc/banner"] != nil, "whited out by rootfs_data")
        #expect(by["overlay/upper/etc/banner"]?.rdev == [0, 0])
        #expect(by["usr/lib/opkg/info/tcpdump.control"] != nil && by["etc/openwrt_release"] != nil)
        #expect(by["usr/bin/ping"]?.xattrs["security.capability"] != nil && by["bin/su"]?.perm == 0o4755)
        if layout == "nor" {
            #expect(by["www/index.html"]?.crc32 == CRC.of("<html>overlay</html>\n") && by["www/luci-static"] == nil, "opaque /www")
        } else {
            #expect(by["www/index.html"]?.crc32 == CRC.of("<html>rom</html>\n") && by["www/luci-static/rom.css"] != nil)
        }
        #expect(entries.count > 100)
    }
}
