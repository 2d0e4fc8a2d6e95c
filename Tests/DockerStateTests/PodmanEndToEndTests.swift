import FirmwareAssembler
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Podman's store written by Debian's podman (images/disks/podman-root.sh), compared with what
/// `podman images` / `podman ps -a` printed and with the kernel's overlay mount of the layers.
@Suite("fwassemble docker on Podman's store (real podman)", .enabled(if: getuid() == 0))
struct PodmanEndToEndTests {
    static func facts(_ name: String) throws -> [[String: Any]] {
        let disk = try TestImages.path("podman-root.img")
        let url = URL(fileURLWithPath: String(disk.dropLast(4)) + ".facts/\(name)")
        return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
    }

    @Test("Inventory equals podman images and podman ps -a; the store is clean")
    func inventory() throws {
        let report = try Disk(path: try TestImages.path("podman-root.img")).docker()
        #expect(report.dataRoots.count == 1)
        let root = try #require(report.dataRoots.first)
        #expect(root.path == "/var/lib/containers/storage" && root.engine == "podman" && root.store == "podman")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let images = try Self.facts("images.json")
        #expect(root.images.count == images.count)
        for i in images {
            let id = try #require(i["Id"] as? String)
            let image = try #require(root.images.first { $0.id == "sha256:" + id })
            #expect(image.tags == (i["Names"] as? [String] ?? []))
            #expect(image.targetDigest == i["Digest"] as? String)
            #expect(image.created == i["CreatedAt"] as? String)
        }
        let ps = try Self.facts("ps.json")
        #expect(root.containers.count == ps.count)
        for p in ps {
            let c = try #require(root.containers.first { $0.id == p["Id"] as? String })
            #expect([c.name] == p["Names"] as? [String])
            #expect(c.image == "sha256:" + (p["ImageID"] as? String ?? ""))
            #expect(c.imageTag == p["Image"] as? String)
            #expect(c.cmd == p["Command"] as? [String])
            #expect(c.state == p["State"] as? String)
            #expect(c.exitCode == (p["ExitCode"] as? Int ?? -1))
            #expect(c.labels == (p["Labels"] as? [String: String] ?? [:]))
            #expect(c.snapshotChain?.count == 3)
        }
    }

    @Test("Integrity finds every planted problem")
    func broken() throws {
        let report = try Disk(path: try TestImages.path("podman-root-broken.img")).docker()
        let root = try #require(report.dataRoots.first)
        let problems = root.integrity.problems.joined(separator: "\n")
        let job = try #require(try Self.facts("ps.json").first { $0["Names"] as? [String] == ["job"] })
        let web = try #require(try Self.facts("ps.json").first { $0["Names"] as? [String] == ["web"] })
        let jobLayer = try #require(root.containers.first { $0.id == job["Id"] as? String }?.mountID)
        #expect(problems.contains("overlay/\(jobLayer): layer \(jobLayer) has no diff directory"))
        #expect(problems.contains("image docker.io/example/web:1.0: its config (big data sha256:\(web["ImageID"] as? String ?? "?")) is missing"))
        #expect(problems.contains("container ghost uses image \(String(repeating: "7", count: 64)), which does not exist"))
        #expect(problems.contains("container ghost: layer \(String(repeating: "8", count: 64)) does not exist"))
        #expect(root.integrity.problems.count == 4, "\(problems)")
        #expect(throws: FWError.self) {
            try Disk(path: try TestImages.path("podman-root-broken.img"))
                .export(.of("job", image: false, to: FileManager.default.temporaryDirectory.appendingPathComponent("x-\(UUID()).tar").path))
        }
    }

    /// The kernel's view: the partition loop-mounted, lowerdir = the layer's diff then the `l/`
    /// links its `lower` file names (as podman mounts it).
    @Test("Container and image exports equal the kernel's overlay mount of the same layers",
          arguments: [("web", false), ("job", false), ("docker.io/example/web:1.0", true), ("docker.io/example/job:2.0", true)])
    func exportMatchesKernel(reference: String, image: Bool) throws {
        let path = try TestImages.path("podman-root.img")
        let report = try Disk(path: path).docker()
        let root = try #require(report.dataRoots.first)
        let top: String
        if image {
            let id = try #require(root.images.first { $0.tags.contains(reference) }?.id)
            let record = try Self.facts("images.json").first { "sha256:" + ($0["Id"] as? String ?? "") == id }
            _ = try #require(record)
            // The image's top layer: the container's chain without its rw layer.
            let c = try #require(root.containers.first { $0.image == id })
            top = try #require(c.snapshotChain?.dropFirst().first)
        } else {
            top = try #require(root.containers.first { $0.name == reference }?.mountID)
        }
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (result, exported) = try DockerScratch.export(reference, image: image, of: path, into: dir)
        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let (kernel, layerCount) = try DockerScratch.podmanOverlay(of: path, top: top, in: dir)
        #expect(result.layers == layerCount)
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(kernel.count == exported.count)
    }
}
