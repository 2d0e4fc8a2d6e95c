import Foundation
import TestSupport
import Testing

/// A HAOS disk snapshotted while running (images/disks/hot-ext4.sh: hot-haos.img, its overlay
/// and data partitions mounted read-write and changed when the image was copied), assembled by
/// the CLI and compared with the kernel's mount of each partition after recovery.
enum HotHAOS {
    static func path(_ name: String) -> String? {
        if let p = try? TestImages.path(name) { return p }
        let local = TestImages.repositoryRoot.appendingPathComponent("images/out/\(name)").path
        return FileManager.default.fileExists(atPath: local) ? local : nil
    }

    static var available: Bool { path("hot-haos.img") != nil && CLI.path != nil }

    static func kernelManifest(partition: Int) throws -> [ManifestEntry] {
        let p = try #require(path("hot-haos-p\(partition).manifest"))
        return try String(contentsOfFile: p, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
    }

    /// The archive's entries under `mountPoint` ("mnt/data"), renamed as seen from the partition.
    static func subtree(_ entries: [ManifestEntry], at mountPoint: String) -> [ManifestEntry] {
        func strip(_ p: String) -> String? {
            if p == mountPoint { return "." }
            return p.hasPrefix(mountPoint + "/") ? String(p.dropFirst(mountPoint.count + 1)) : nil
        }
        return entries.compactMap { e in
            guard let p = strip(e.path) else { return nil }
            var e = e
            e.path = p
            e.link = e.link.flatMap(strip)
            return e
        }
    }
}

@Suite("Hot HAOS snapshot: assemble replays the journals", .enabled(if: HotHAOS.available,
    "hot-haos.img not built (images/disks/hot-ext4.sh needs root and loop devices) or the CLI not built"))
struct HotSnapshotEndToEndTests {
    func assemble(_ extra: [String]) throws -> (entries: [ManifestEntry], report: [String: Any]) {
        let scratch = try ScratchDir()
        let out = scratch.path + "/hot.tar"
        let image = try #require(HotHAOS.path("hot-haos.img"))
        let r = try CLI.run(["assemble", "--quiet", image, "-o", out, "--compression", "none"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))) as? [String: Any])
        return (try TarView.manifest(out), report)
    }

    @Test("/mnt/data and /mnt/overlay equal the kernel's mounts in every field; the report lists both journals")
    func replayed() throws {
        let (entries, report) = try assemble([])
        for (partition, mountPoint) in [(8, "mnt/data"), (7, "mnt/overlay")] {
            let expected = try HotHAOS.kernelManifest(partition: partition)
            // Links left out: a file also shown through a bind (/root/.ssh, /var/lib/docker) is one
            // hardlink group in the archive, which the partition's own view does not have (the
            // reader-level tests compare hardlinks with the kernel).
            let diffs = Manifest.differences(expected: expected, actual: HotHAOS.subtree(entries, at: mountPoint), ignoring: [.links])
            #expect(diffs.isEmpty, "partition \(partition): \(diffs.prefix(10).joined(separator: "\n"))")
        }
        #expect(entries.filter { $0.path.hasPrefix("mnt/data/docker/containers/abc/") }.count == 50)
        // The bind of /mnt/overlay/etc/hostname shows the replayed file too.
        let hostname = try #require(entries.first { $0.path == "etc/hostname" })
        let overlayHostname = try #require(try HotHAOS.kernelManifest(partition: 7).first { $0.path == "etc/hostname" })
        #expect(hostname.crc32 == overlayHostname.crc32)
        let journals = try #require(report["journals"] as? [[String: Any]])
        #expect(journals.compactMap { $0["index"] as? Int }.sorted() == [7, 8])
        for j in journals {
            let journal = try #require(j["journal"] as? [String: Any])
            #expect(journal["replayed"] as? Bool == true)
            #expect((journal["transactions"] as? Int ?? 0) > 0 && (journal["blocks"] as? Int ?? 0) > 0)
            #expect((journal["warnings"] as? [Any])?.isEmpty == true)
            for key in ["revoked", "orphans"] { #expect(journal[key] is Int) }
        }
    }

    @Test("--no-replay: the stale on-disk state, and the report says the journals were not replayed")
    func notReplayed() throws {
        let (entries, report) = try assemble(["--no-replay"])
        #expect(!entries.contains { $0.path.hasPrefix("mnt/data/docker/containers/abc/") })
        let journals = try #require(report["journals"] as? [[String: Any]])
        #expect(journals.count == 2)
        #expect(journals.allSatisfy { ($0["journal"] as? [String: Any])?["replayed"] as? Bool == false })
        #expect((report["warnings"] as? [String])?.contains { $0.contains("--no-replay") } == true)
    }
}
