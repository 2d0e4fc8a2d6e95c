import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `--device` through the built binary, on dissect.btrfs's multi-device images
/// (images/fetch-dissect-btrfs.sh; skipped when not fetched), and a data checksum mismatch
/// reported as a warning of the file.
enum DissectBtrfsData {
    static let directory = TestImages.repositoryRoot.appendingPathComponent(".build-dissect-btrfs").path
    static func path(_ name: String) -> String { directory + "/btrfs-\(name).bin" }
    static var available: Bool { FwassembleCLI.path != nil && FileManager.default.fileExists(atPath: path("default")) }
}

@Suite("--device and btrfs data checksums through the CLI",
       .enabled(if: DissectBtrfsData.available, "fwassemble not built or dissect.btrfs's test data not fetched"))
struct BtrfsDevicesCLITests {
    static func path(_ name: String) -> String { DissectBtrfsData.path(name) }
    static let large = Data(repeating: 0x61, count: 5_242_880) + Data([0x0A])

    static func temporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("btrfs-cli-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    static func remove(_ folder: String) {
        do {
            try FileManager.default.removeItem(atPath: folder)
        } catch {
            Issue.record("removing \(folder): \(error)")
        }
    }

    @Test("extract raid1-1.bin --device raid1-2.bin (and raid5, raid0, raid10 with all their devices): the files, large.txt whole")
    func extractWithDevices() throws {
        let folder = try Self.temporaryFolder()
        defer { Self.remove(folder) }
        for (first, others) in [("raid1-1", ["raid1-2"]), ("raid0-2", ["raid0-1"]), ("raid5-1", ["raid5-2"]), ("raid10-1", ["raid10-2"])] {
            let out = folder + "/\(first).tar"
            let r = try FwassembleCLI.run(["extract", Self.path(first), "--partition", "1", "-o", out]
                                          + others.flatMap { ["--device", Self.path($0)] })
            #expect(r.status == 0, "\(first): \(r.stderr)")
            #expect(r.stderr.contains("; 0 warnings"), "\(first): \(r.stderr)")
            let large = try TestImages.run(["tar", "-xOf", out, "./large.txt"])
            #expect(large == Self.large, "\(first)")
            let link = String(decoding: try TestImages.run(["tar", "-tvf", out, "./link.txt"]), as: UTF8.self)
            #expect(link.contains("./link.txt -> path/to/a/file.txt"), "\(first): \(link)")
        }
    }

    @Test("a GPT disk whose two partitions are the members of one RAID0 btrfs: read whole without --device; a plain btrfs beside it is not listed")
    func membersOnOneDisk() throws {
        let folder = try Self.temporaryFolder()
        defer { Self.remove(folder) }
        let disk = folder + "/two-members.img"
        try TestImages.run(["truncate", "-s", "260M", disk])
        try TestImages.run(["sfdisk", "-q", disk], stdin: Data("label: gpt\n,128MiB\n,128MiB\n".utf8))
        for (index, member) in ["raid0-1", "raid0-2"].enumerated() {
            try TestImages.run(["dd", "if=\(Self.path(member))", "of=\(disk)", "bs=1M", "seek=\(1 + 128 * index)", "conv=sparse,notrunc", "status=none"])
        }
        let r = try FwassembleCLI.run(["cat", disk, "/large.txt", "--partition", "1"])
        #expect(r.status == 0 && r.stdout == Self.large, "\(r.stderr)")
        let inspect = try FwassembleCLI.run(["inspect", disk, "--json"])
        let doc = try #require(try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any])
        for part in try #require(doc["partitions"] as? [[String: Any]]) {
            let btrfs = try #require((part["filesystem"] as? [String: Any])?["btrfs"] as? [String: Any])
            #expect((btrfs["member_devices"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }.sorted() == [1, 2])
            #expect(btrfs["ignored_devices"] == nil)
        }
        // The default image given as a device of its own: a whole-file btrfs of another filesystem, listed.
        let other = try FwassembleCLI.run(["inspect", disk, "--json", "--device", Self.path("default")])
        #expect(other.status == 0 && other.stdoutText.contains("another btrfs filesystem"), "\(other.stderr)")
    }

    @Test("a missing device: exit 1, one line naming the image, the missing devid and the chunk; no output left")
    func missingDevice() throws {
        let folder = try Self.temporaryFolder()
        defer { Self.remove(folder) }
        let out = folder + "/raid0.tar"
        let r = try FwassembleCLI.run(["extract", Self.path("raid0-2"), "--partition", "1", "-o", out])
        #expect(r.status == 1)
        #expect(r.stderr.contains("fwassemble: \(Self.path("raid0-2"))") && r.stderr.contains("missing device 1 (devid) for the RAID0 chunk at logical"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        // A --device that holds no btrfs at all is an error naming it.
        let notBtrfs = folder + "/zeros.img"
        try Data(count: 1 << 20).write(to: URL(fileURLWithPath: notBtrfs))
        let bad = try FwassembleCLI.run(["ls", Self.path("raid1-1"), "--partition", "1", "--device", notBtrfs])
        #expect(bad.status == 1 && bad.stderr.contains(notBtrfs) && bad.stderr.contains("holds btrfs"), "\(bad.stderr)")
    }

    @Test("inspect --json lists the member devices read and the ones ignored")
    func inspectMembers() throws {
        let r = try FwassembleCLI.run(["inspect", Self.path("raid1c3-1"), "--json", "--device", Self.path("raid1c3-3"),
                                       "--device", Self.path("default")])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let part = try #require((doc["partitions"] as? [[String: Any]])?.first)
        let btrfs = try #require((part["filesystem"] as? [String: Any])?["btrfs"] as? [String: Any])
        #expect(btrfs["devices"] as? Int == 3)
        let members = try #require(btrfs["member_devices"] as? [[String: Any]])
        #expect(members.compactMap { $0["id"] as? Int } == [1, 3])
        let ignored = try #require(btrfs["ignored_devices"] as? [[String: Any]])
        #expect(ignored.count == 1 && (ignored.first?["reason"] as? String)?.contains("another btrfs filesystem") == true)
    }

    @Test("a flipped byte in large.txt's data: a warning naming /large.txt, the bytes as stored; --strict fails and leaves nothing")
    func dataChecksumWarning() throws {
        let folder = try Self.temporaryFolder()
        defer { Self.remove(folder) }
        let image = folder + "/default.bin"
        try TestImages.run(["cp", "--sparse=always", Self.path("default"), image])
        // The first 4 KiB block of large.txt's "aaaa...": found by content, flipped in the copy.
        try TestImages.flipByte(77, ofBlock: [UInt8](repeating: 0x61, count: 4096), in: image)

        let out = folder + "/default.tar"
        let r = try FwassembleCLI.run(["extract", image, "--partition", "1", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("/large.txt: btrfs data checksum (crc32c) mismatch"), "\(r.stderr)")
        let large = try TestImages.run(["tar", "-xOf", out, "./large.txt"])
        #expect(large.count == Self.large.count)
        #expect(zip(large, Self.large).filter { $0 != $1 }.count == 1)
        let cat = try FwassembleCLI.run(["cat", image, "/large.txt", "--partition", "1"])
        #expect(cat.status == 0 && cat.stdout == large && cat.stderr.contains("warning: /large.txt: btrfs data checksum (crc32c) mismatch"), "\(cat.stderr)")
        let strict = try FwassembleCLI.run(["extract", image, "--partition", "1", "-o", folder + "/strict.tar", "--strict"])
        #expect(strict.status == 1 && strict.stderr.contains("large.txt"), "\(strict.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/strict.tar"))
    }
}
