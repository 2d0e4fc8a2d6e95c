import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The facts the docker-root recipe wrote beside its disks (ids computed by Python's hashlib).
struct RecipeFacts: Decodable {
    struct Image: Decodable { var id: String; var layers: [String]; var chains: [String] }
    struct Container: Decodable { var id: String; var image: String; var tag: String; var mount: String; var layers: [String] }
    var data_root: String
    var images: [String: Image]
    var containers: [String: Container]
    var planted: [String]

    static func load(_ disk: String) throws -> RecipeFacts {
        let json = String(disk.dropLast(4)) + ".json"
        return try JSONDecoder().decode(RecipeFacts.self, from: try Data(contentsOf: URL(fileURLWithPath: json)))
    }
}

enum DockerScratch {
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-docker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Exports a container (or, with `image`, an image) of the disk at `path` into `dir` and
    /// returns what it did and the archive's manifest, expecting no problems.
    static func export(_ reference: String, image: Bool, of path: String, into dir: URL) throws
        -> (result: DockerExportResult, manifest: [ManifestEntry]) {
        let out = dir.appendingPathComponent("export.tar").path
        let result = try Disk(path: path).export(.of(reference, image: image, to: out))
        #expect(result.problems.isEmpty, "\(result.problems)")
        return (result, try tarManifest(out))
    }

    static func tarManifest(_ path: String) throws -> [ManifestEntry] {
        let script = TestImages.repositoryRoot.appendingPathComponent("images/tar_manifest.py").path
        let data = try TestImages.run(["python3", script, "--check", path])
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
    }

    /// The kernel's view with one thing tar cannot say removed: a file whose other names are
    /// not in the merged view (hidden by a whiteout, or in another image's layer) still has a
    /// link count above 1, which manifest.py shows as a link to itself; an archive has one member.
    static func withoutLoneLinks(_ entries: [ManifestEntry]) -> [ManifestEntry] {
        var counts: [String: Int] = [:]
        for e in entries { if let l = e.link { counts[l, default: 0] += 1 } }
        return entries.map { e in
            var e = e
            if e.link == e.path, counts[e.path] == 1 { e.link = nil }
            return e
        }
    }

    /// The kernel's read-only overlay mount of layer directories that live in partition
    /// `partition` of `disk` (ext4, loop-mounted by offset in `dir`): `layers` gets the data
    /// mount's path and returns the lower directories, top first. Returns the manifest of the
    /// merged view (lone links removed, as `withoutLoneLinks`) and the number of layers;
    /// unmounts both before returning.
    static func kernelOverlay(of disk: String, partition: Int, in dir: URL,
                              layers: (String) throws -> [String]) throws -> (manifest: [ManifestEntry], layers: Int) {
        let data = dir.appendingPathComponent("data"), merged = dir.appendingPathComponent("merged")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: merged, withIntermediateDirectories: true)
        let offset = try partitionOffset(disk, partition)
        try TestImages.run(["mount", "-t", "ext4", "-o", "loop,ro,offset=\(offset)", disk, data.path])
        defer { _ = try? TestImages.run(["umount", data.path]) }
        let lowers = try layers(data.path)
        try TestImages.run(["mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=\(lowers.joined(separator: ":"))", merged.path])
        defer { _ = try? TestImages.run(["umount", merged.path]) }
        return (withoutLoneLinks(try Manifest.ofDirectory(merged.path)), lowers.count)
    }

    /// The kernel's overlay mount of Podman (containers/storage) layer `top` of the store in
    /// partition 2 of `disk`, as podman mounts it: lowerdir = the layer's diff, then the `l/`
    /// links its `lower` file names (a bottom layer has none). A lone layer gets an empty second
    /// one, since overlayfs wants two lower layers; `layers` counts the store's layers only.
    static func podmanOverlay(of disk: String, top: String, in dir: URL) throws -> (manifest: [ManifestEntry], layers: Int) {
        var padded = 0
        let (manifest, count) = try kernelOverlay(of: disk, partition: 2, in: dir) { data in
            let store = data + "/var/lib/containers/storage/overlay"
            var lowers = [store + "/\(top)/diff"]
            if let lower = try? String(contentsOfFile: store + "/\(top)/lower", encoding: .utf8) {   // a bottom layer has none
                lowers += lower.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").map { store + "/" + $0 }
            }
            if lowers.count == 1 {
                let empty = dir.appendingPathComponent("empty")
                try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
                lowers.append(empty.path)
                padded = 1
            }
            return lowers
        }
        return (manifest, count - padded)
    }

    /// The byte offset of an MBR partition, from sfdisk's JSON.
    static func partitionOffset(_ disk: String, _ number: Int) throws -> UInt64 {
        let data = try TestImages.run(["sfdisk", "-J", disk])
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let table = try #require(json["partitiontable"] as? [String: Any])
        let parts = try #require(table["partitions"] as? [[String: Any]])
        let start = try #require((parts[number - 1]["start"] as? NSNumber)?.uint64Value)
        return start * 512
    }
}

@Suite("fwassemble docker on the docker-root disks")
struct DockerEndToEndTests {
    @Test("Intact disk: one data-root at the bind source, both containers and image tags, integrity ok")
    func intact() throws {
        let path = try TestImages.path("docker-root.img")
        let facts = try RecipeFacts.load(path)
        let report = try Disk(path: path).docker()
        #expect(report.dataRoots.count == 1, "\(report.dataRoots.map(\.path))")
        let root = try #require(report.dataRoots.first)
        #expect(root.path == facts.data_root)
        #expect(Set(root.foundVia) == ["/mnt/data/docker", "/var/lib/docker"])
        #expect(root.driver == "overlay2" && root.engine == "docker")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        #expect(root.integrity.whiteouts == 3 && root.integrity.opaqueDirectories == 1)
        #expect(Set(root.images.map(\.id)) == Set(facts.images.values.map(\.id)))
        for (tag, image) in facts.images {
            let found = try #require(root.images.first { $0.id == image.id })
            #expect(found.tags == [tag])
            #expect(found.chainIDs == image.chains)
            #expect(found.layers == image.layers.count)
        }
        let web = try #require(root.containers.first { $0.name == "web" })
        let job = try #require(root.containers.first { $0.name == "job" })
        #expect(web.id == facts.containers["web"]?.id && web.image == facts.containers["web"]?.image)
        #expect(web.running && web.exitCode == 0 && web.restartPolicy == "always")
        #expect(!job.running && job.exitCode == 1 && job.restartPolicy == "on-failure" && job.restartCount == 2)
        #expect(root.summary.containers == 2 && root.summary.running == 1 && root.summary.exitedNonzero == 1)
        #expect(root.volumes.first?.name == "webdata" && root.volumes.first?.size == 16 + 3000)
    }

    @Test("Broken disk: every planted problem is reported, nothing followed outside")
    func broken() throws {
        let path = try TestImages.path("docker-root-broken.img")
        let facts = try RecipeFacts.load(path)
        #expect(facts.planted.count == 7)
        let root = try #require(try Disk(path: path).docker().dataRoots.first)
        let problems = root.integrity.problems
        #expect(!root.integrity.ok)
        let expected = [
            "overlay2/l/APPBAPPBAPPBAPPBAPPBAPPB03: dangling link",
            "is not in layerdb",
            "the lower chain loops",
            "\"../../../etc\" is not a single path component",
            "overlay2/escape: layer directory is a symlink to /etc; not followed",
            "config.v2.json: invalid JSON",
            "example.com/ghost:1 points at image",
        ]
        for fragment in expected {
            #expect(problems.contains { $0.contains(fragment) }, "\(fragment) not in \(problems)")
        }
        #expect(problems.allSatisfy { $0.hasPrefix("/mnt/data/docker/") })
        // The intact container is still listed.
        #expect(root.containers.contains { $0.name == "web" && $0.running })
    }

    /// Exports through the facade, checks that no whiteout or overlay xattr is left, and, where
    /// root, compares with the kernel's overlay mount of the same layers: the data partition
    /// loop-mounted read-only, the lowerdir list made as dockerd does (the rw diff, then the
    /// `l/` links its `lower` file names, read from the kernel's view).
    @Test("Container export equals the kernel's overlay mount of its layers", arguments: [
        ("docker-root.img", 3, "docker", "web"), ("docker-root.img", 3, "docker", "job"),
        ("haos-full.img", 8, "docker", "homeassistant"), ("haos-full.img", 8, "docker", "oneshot"),
        ("rpi-full.img", 2, "var/lib/docker", "homeassistant"), ("rpi-full.img", 2, "var/lib/docker", "oneshot"),
    ])
    func containerExportMatchesKernel(image: String, partition: Int, dataRoot: String, name: String) throws {
        let path = try TestImages.path(image)
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("export.tar.gz").path
        let result = try Disk(path: path).export(.of(name, image: false, to: out))
        #expect(result.problems.isEmpty, "\(result.problems)")
        let exported = try DockerScratch.tarManifest(out)
        #expect(!exported.contains { $0.type == "characterDevice" && $0.rdev == [0, 0] })
        #expect(!exported.contains { $0.xattrs.keys.contains { $0.contains("overlay.") } })
        #expect(exported.contains { $0.path == ".dockerenv" || $0.path == "etc/hostname" })

        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let (kernel, layerCount) = try DockerScratch.kernelOverlay(of: path, partition: partition, in: dir) { data in
            let root = data + "/" + dataRoot
            // The container id by name, from the configs as the kernel shows them.
            var id: String?
            for c in try FileManager.default.contentsOfDirectory(atPath: root + "/containers") {
                let config = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: root + "/containers/\(c)/config.v2.json")))
                if (config as? [String: Any])?["Name"] as? String == "/" + name { id = c }
            }
            let container = try #require(id)
            func read(_ p: String) throws -> String {
                try String(contentsOfFile: root + "/" + p, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let mountID = try read("image/overlay2/layerdb/mounts/\(container)/mount-id")
            let lower = try read("overlay2/\(mountID)/lower").split(separator: ":").map { root + "/overlay2/" + $0 }
            return [root + "/overlay2/\(mountID)/diff"] + lower
        }
        #expect(result.layers == layerCount)
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(kernel.count == exported.count)
    }

    @Test("Image export equals the kernel's overlay mount of the image's layers", arguments: ["example.com/web:1.0", "example.com/job:latest"])
    func imageExportMatchesKernel(tag: String) throws {
        let path = try TestImages.path("docker-root.img")
        let facts = try RecipeFacts.load(path)
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("export.tar").path
        let result = try Disk(path: path).export(.of(tag, image: true, to: out))
        #expect(result.problems.isEmpty, "\(result.problems)")
        let exported = try DockerScratch.tarManifest(out)
        let layers = try #require(facts.images[tag]).layers.reversed()
        #expect(result.layers == layers.count)
        #expect(!exported.contains { $0.path == ".dockerenv" })
        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let (kernel, _) = try DockerScratch.kernelOverlay(of: path, partition: 3, in: dir) { data in
            layers.map { data + "/docker/overlay2/\($0)/diff" }
        }
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    @Test("Realistic HAOS and Raspberry Pi disks: both containers, states, exit codes, tags; integrity ok",
          arguments: [("haos-full.img", "/mnt/data/docker"), ("rpi-full.img", "/var/lib/docker")])
    func realistic(image: String, dataRoot: String) throws {
        let report = try Disk(path: try TestImages.path(image)).docker()
        #expect(report.dataRoots.map(\.path) == [dataRoot])
        let root = try #require(report.dataRoots.first)
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        #expect(root.integrity.whiteouts > 0 && root.integrity.opaqueDirectories > 0)
        #expect(Set(root.images.flatMap(\.tags)) == ["example/app:1.0", "example/tool:2.0"])
        let ha = try #require(root.containers.first { $0.name == "homeassistant" })
        let oneshot = try #require(root.containers.first { $0.name == "oneshot" })
        #expect(ha.running && ha.exitCode == 0 && ha.imageTag == "example/app:1.0")
        #expect(!oneshot.running && oneshot.exitCode == 1 && oneshot.state == "exited")
        #expect(root.images.first { $0.tags == ["example/app:1.0"] }?.id == ha.image)
        #expect(root.summary.running == 1 && root.summary.exitedNonzero == 1 && root.summary.containers == 2)
    }

    @Test("The assemble report carries the docker summary")
    func assembleReport() throws {
        let path = try TestImages.path("docker-root.img")
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var request = AssembleRequest()
        request.output.output = dir.appendingPathComponent("root.tar.gz").path
        let report = try Disk(path: path).assemble(request)
        let docker = try #require(report.docker)
        #expect(docker.dataRoots.map(\.path) == ["/mnt/data/docker"])
        #expect(docker.dataRoots.first?.summary.running == 1)
        let json = try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any]
        #expect((json?["docker"] as? [String: Any])?["data_roots"] != nil)
    }

    @Test("--expect: matching list passes; a missing or unexpected container is reported")
    func expect() throws {
        let path = try TestImages.path("docker-root.img")
        let facts = try RecipeFacts.load(path)
        let report = try Disk(path: path).docker()
        let good = "[{\"name\": \"web\", \"image\": \"example.com/web:1.0\"}, {\"name\": \"job\", \"image\": \"\(facts.containers["job"]!.image)\"}]"
        #expect(try report.compare(expected: Array(good.utf8)).isEmpty)
        let missing = "{\"containers\": [{\"name\": \"web\"}, {\"name\": \"hassio_supervisor\"}]}"
        let m = try report.compare(expected: Array(missing.utf8))
        #expect(m.contains("missing container hassio_supervisor"))
        #expect(m.contains { $0.hasPrefix("unexpected container job") })
        let wrongImage = "[{\"name\": \"web\", \"image\": \"example.com/job:latest\"}, {\"name\": \"job\"}]"
        #expect(try report.compare(expected: Array(wrongImage.utf8)).count == 1)
        #expect(throws: FWError.self) { try report.compare(expected: Array("[{".utf8)) }
    }
}

/// The `fwassemble docker` command itself (the binary SwiftPM builds beside the test bundle).
enum DockerBinary {
    static var path: String? { FwassembleCLI.path }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try FwassembleCLI.run(arguments)
        return (r.status, r.stdoutText, r.stderr)
    }
}

@Suite("fwassemble docker command", .enabled(if: DockerBinary.path != nil, "fwassemble binary not built"))
struct DockerCommandTests {
    @Test("--json has the contract's keys and values, equal to the facade's report")
    func json() throws {
        let path = try TestImages.path("docker-root.img")
        let r = try DockerBinary.run(["docker", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let roots = try #require(doc["data_roots"] as? [[String: Any]])
        let root = try #require(roots.first)
        #expect(root["path"] as? String == "/mnt/data/docker" && root["driver"] as? String == "overlay2" && root["engine"] as? String == "docker")
        let images = try #require(root["images"] as? [[String: Any]])
        #expect(images.allSatisfy { ($0["id"] as? String)?.hasPrefix("sha256:") == true && $0["tags"] is [String] && $0["layers"] as? Int == 2 })
        let containers = try #require(root["containers"] as? [[String: Any]])
        for key in ["id", "name", "image", "cmd", "running", "exit_code", "started_at", "finished_at", "restart_policy"] {
            #expect(containers.allSatisfy { $0[key] != nil }, "\(key)")
        }
        #expect(root["volumes"] is [Any])
        let integrity = try #require(root["integrity"] as? [String: Any])
        #expect(integrity["ok"] as? Bool == true && (integrity["problems"] as? [Any])?.isEmpty == true)
        let summary = try #require(root["summary"] as? [String: Any])
        #expect(summary["containers"] as? Int == 2 && summary["running"] as? Int == 1 && summary["exited_nonzero"] as? Int == 1)
        let viaFacade = try Disk(path: path).docker()
        #expect(try JSONDecoder().decode(DockerReport.self, from: Data(r.stdout.utf8)) == viaFacade)
    }

    @Test("--expect exits 0 on a match and 1 on a missing or unexpected container; tables name both containers")
    func expect() throws {
        let path = try TestImages.path("docker-root.img")
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.json"), bad = dir.appendingPathComponent("bad.json")
        try Data("[{\"name\": \"web\", \"image\": \"example.com/web:1.0\"}, {\"name\": \"job\"}]".utf8).write(to: good)
        try Data("[{\"name\": \"web\"}, {\"name\": \"hassio_supervisor\"}]".utf8).write(to: bad)
        let ok = try DockerBinary.run(["docker", path, "--expect", good.path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("web") && ok.stdout.contains("job") && ok.stdout.contains("integrity: ok"))
        let fail = try DockerBinary.run(["docker", path, "--expect", bad.path])
        #expect(fail.status == 1)
        #expect(fail.stderr.contains("missing container hassio_supervisor") && fail.stderr.contains("unexpected container job"))
        let usage = try DockerBinary.run(["docker", path, "--export", "web"])
        #expect(usage.status == 2)
        let missing = try DockerBinary.run(["docker", path, "--export", "nope", "-o", dir.appendingPathComponent("x.tar.gz").path])
        #expect(missing.status == 1 && missing.stderr.contains("no container nope"))
    }
}
