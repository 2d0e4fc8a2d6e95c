import FirmwareAssembler
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A private sparse copy of a test disk whose ext4 data partition is changed with `debugfs -w`
/// (the containerd and Podman stores the recipes made with the real daemons, then damaged).
struct MutatedDisk {
    let dir: URL
    let path: String
    let offset: UInt64

    init(_ name: String, partition: Int = 3) throws {
        dir = try DockerScratch.directory()
        path = dir.appendingPathComponent(name).path
        try TestImages.run(["cp", "--sparse=always", try TestImages.path(name), path])
        offset = try DockerScratch.partitionOffset(path, partition)
    }

    var device: String { "\(path)?offset=\(offset)" }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// Runs debugfs commands (one a line) on the partition, writable.
    func debugfs(_ commands: [String]) throws {
        let file = dir.appendingPathComponent("debugfs.cmd")
        try commands.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try TestImages.run(["debugfs", "-w", "-f", file.path, device])
        try FileManager.default.removeItem(at: file)
    }

    func cat(_ file: String) throws -> [UInt8] { Array(try TestImages.run(["debugfs", "-R", "cat \(file)", device])) }

    /// Replaces a file's content (a new inode under the same name).
    func replace(_ file: String, with bytes: [UInt8]) throws {
        let local = dir.appendingPathComponent("new-content")
        try Data(bytes).write(to: local)
        let parent = (file as NSString).deletingLastPathComponent, name = (file as NSString).lastPathComponent
        try debugfs(["cd \(parent)", "rm \(name)", "write \(local.path) \(name)"])
        try FileManager.default.removeItem(at: local)
    }

    /// The files left in the copy's folder besides the disk.
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != (path as NSString).lastPathComponent }.sorted()
    }
}

/// `fwassemble docker` on damaged containerd and Podman stores (issue 22): no signal, no hang
/// (each run under 10 s), exit 1 naming the problem, nothing left behind.
@Suite("Hostile container stores through the CLI", .enabled(if: FwassembleCLI.path != nil))
struct HostileStoreTests {
    static let content = "/docker/containerd/daemon/io.containerd.content.v1.content/blobs/sha256"

    /// Runs the binary with its own TMPDIR (checked empty afterwards) and checks it ended by
    /// itself within 10 s.
    static func run(_ arguments: [String], tmp: String? = nil) throws -> FwassembleCLI.Result {
        let clock = ContinuousClock()
        let start = clock.now
        let r = try FwassembleCLI.run(arguments, environment: tmp.map { ["TMPDIR": $0] } ?? [:])
        #expect(clock.now - start < .seconds(10), "\(arguments) took \(clock.now - start)")
        #expect(!r.signalled, "\(arguments) ended by signal \(r.status): \(r.stderr)")
        return r
    }

    /// The layer blob digests of an image of the copy, bottom first, read from its content store.
    static func layerBlobs(_ disk: MutatedDisk, target: String) throws -> [String] {
        func json(_ digest: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(try disk.cat("\(content)/\(digest.dropFirst(7))"))) as? [String: Any])
        }
        var manifest = try json(target)
        if let list = manifest["manifests"] as? [[String: Any]] {
            let chosen = try #require(list.first { ($0["platform"] as? [String: Any])?["os"] as? String != "unknown" })
            manifest = try json(try #require(chosen["digest"] as? String))
        }
        return try #require(manifest["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String }
    }

    /// An image export from the content store of containerd-root-nosnap (no snapshot
    /// directories: the export reads the blobs) after `damage`, with its result and the disk.
    static func exportFromBlobs(_ damage: (MutatedDisk, [String]) throws -> Void, options: [String] = [],
                                tmp: ((MutatedDisk) throws -> String?)? = nil) throws -> (FwassembleCLI.Result, MutatedDisk, [String]) {
        let disk = try MutatedDisk("containerd-root-nosnap.img")
        let web = try #require(try Disk(path: disk.path).docker().dataRoots.first?.images.first { $0.tags.contains("example/web:1.0") })
        let blobs = try layerBlobs(disk, target: web.id)
        try damage(disk, blobs)
        let out = disk.dir.appendingPathComponent("web.tar").path
        let tmpdir = try tmp?(disk)
        let r = try run(["docker", disk.path, "--export-image", "docker.io/example/web:1.0", "-o", out] + options, tmp: tmpdir)
        #expect(!FileManager.default.fileExists(atPath: out), "a failed export left its output")
        if let tmpdir { #expect(try FileManager.default.contentsOfDirectory(atPath: tmpdir).isEmpty) }
        return (r, disk, blobs)
    }

    @Test("A tampered layer blob fails --export-image (exit 1, the layer named, no output); --json still lists it")
    func tamperedBlob() throws {
        let (r, disk, blobs) = try Self.exportFromBlobs { disk, blobs in
            var bytes = try disk.cat("\(Self.content)/\(blobs[0].dropFirst(7))")
            bytes[bytes.count / 2] ^= 0x01
            try disk.replace("\(Self.content)/\(blobs[0].dropFirst(7))", with: bytes)
        }
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 1 (blob \(blobs[0]))") && r.stderr.contains("not the digest it is named by"), "\(r.stderr)")
        let json = try Self.run(["docker", disk.path, "--json"])
        #expect(json.stdoutText.contains("\(blobs[0].dropFirst(7)): content is sha256:"), "\(json.stdoutText)")
        #expect(try disk.leftovers() == [])
    }

    @Test("A layer tar cut inside a header fails --export-image naming the layer; --json lists it")
    func truncatedLayer() throws {
        let (r, disk, blobs) = try Self.exportFromBlobs { disk, blobs in
            let file = "\(Self.content)/\(blobs[1].dropFirst(7))"
            try disk.replace(file, with: Array(try disk.cat(file).prefix(700)))
        }
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 2 (blob \(blobs[1]))"), "\(r.stderr)")
        let json = try Self.run(["docker", disk.path, "--json"])
        #expect(json.stdoutText.contains("\(blobs[1].dropFirst(7)): content is sha256:"), "\(json.stdoutText)")
    }

    @Test("--max-layer-size bounds a layer's decompression (exit 1, the option named); 0 is refused")
    func maxLayerSize() throws {
        let (r, disk, _) = try Self.exportFromBlobs({ _, _ in }, options: ["--max-layer-size", "1000"])
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 1") && r.stderr.contains("--max-layer-size 1000"), "\(r.stderr)")
        let zero = try Self.run(["docker", disk.path, "--export-image", "x", "-o", disk.dir.appendingPathComponent("x.tar").path, "--max-layer-size", "0"])
        #expect(zero.status != 0 && zero.stderr.contains("--max-layer-size"), "\(zero.stderr)")
        let listing = try Self.run(["docker", disk.path, "--max-layer-ratio", "5"])
        #expect(listing.status != 0 && listing.stderr.contains("only for --export"), "\(listing.stderr)")
    }

    @Test("A TMPDIR without room: 'no space left on device' naming the folder, not a missing snapshot",
          .enabled(if: getuid() == 0))
    func noSpace() throws {
        var mounted: String?
        let (r, disk, _) = try Self.exportFromBlobs({ _, _ in }) { disk in
            let tiny = disk.dir.appendingPathComponent("tiny").path
            try FileManager.default.createDirectory(atPath: tiny, withIntermediateDirectories: true)
            guard (try? TestImages.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tiny])) != nil else { return nil }
            mounted = tiny
            return tiny
        }
        defer {
            if let mounted { _ = try? TestImages.run(["umount", mounted]) }
            disk.remove()
        }
        guard let mounted else { return }   // mount not permitted here: nothing to check
        #expect(r.status == 1)
        #expect(r.stderr.contains("no space left on device in \(mounted)") && !r.stderr.contains("does not exist"), "\(r.stderr)")
    }

    /// containerd-root.img with `docker/containerd/daemon` moved to `docker/containerd/real` and a
    /// symlink `daemon -> target` in its place.
    static func linkedDaemon(_ target: String) throws -> MutatedDisk {
        let disk = try MutatedDisk("containerd-root.img")
        try disk.debugfs(["ln /docker/containerd/daemon /docker/containerd/real", "unlink /docker/containerd/daemon",
                          "symlink /docker/containerd/daemon \(target)"])
        return disk
    }

    @Test("A containerd root reached through a symlink inside the data-root's filesystem is read as the real one",
          arguments: ["real", "/mnt/data/docker/containerd/real"])
    func symlinkedContainerdRoot(target: String) throws {
        let disk = try Self.linkedDaemon(target)
        defer { disk.remove() }
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        #expect(root.store == "containerd" && root.containers.count == 2 && root.images.count == 5, "\(root.store) \(root.integrity.problems)")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let out = disk.dir.appendingPathComponent("web.tar").path
        let export = try Self.run(["docker", disk.path, "--export", "web", "-o", out])
        #expect(export.status == 0, "\(export.stderr)")
    }

    @Test("A containerd root symlink leaving the filesystem (or dangling) is a problem, not an unknown clean store",
          arguments: ["/etc", "/nowhere", "../../../../etc"])
    func symlinkOutOfTheFilesystem(target: String) throws {
        let disk = try Self.linkedDaemon(target)
        defer { disk.remove() }
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        #expect(!root.integrity.ok)
        #expect(root.integrity.problems.contains { $0.contains("containerd/daemon: is a symlink to \(target)") && $0.contains("not followed") },
                "\(root.integrity.problems)")
    }

    /// `bytes` with the first occurrence of `old` (at or after `from`) replaced by `new` (same length).
    static func patch(_ bytes: inout [UInt8], _ old: [UInt8], _ new: [UInt8], from: Int = 0) throws -> Int {
        #expect(old.count == new.count)
        let at = try #require((from...(bytes.count - old.count)).first { Array(bytes[$0..<($0 + old.count)]) == old }, "pattern not found")
        bytes.replaceSubrange(at..<(at + old.count), with: new)
        return at
    }

    @Test("Malformed bbolt records are problems with their place: a negative size, an unknown kind, a snapshot its own parent")
    func malformedBoltRecords() throws {
        let disk = try MutatedDisk("containerd-root.img")
        defer { disk.remove() }
        let daemon = "/docker/containerd/daemon"
        let metaDB = "\(daemon)/io.containerd.metadata.v1.bolt/meta.db", snapshots = "\(daemon)/io.containerd.snapshotter.v1.overlayfs/metadata.db"
        var meta = try disk.cat(metaDB)
        // The first record of size 422 (zig-zag varint cc 06: an image target's or a content
        // record's, by the recipe's names) made -422 (cb 06).
        _ = try Self.patch(&meta, Array("size".utf8) + [0xCC, 0x06], Array("size".utf8) + [0xCB, 0x06])
        // The two layer-2 snapshots both name the same chain id as parent: that one is its own parent.
        let layer1 = "sha256:c8b5cc88e3611f568b2d32f3c955f56373713072199a63fdf5b7e92f598c5d62"
        let layer2 = "sha256:95281cd628634982591b2be1a23bf14ba5ae1f9485951bbbe4b5f2df3d1a7c10"
        let first = try Self.patch(&meta, Array("parent\(layer1)".utf8), Array("parent\(layer2)".utf8))
        _ = try Self.patch(&meta, Array("parent\(layer1)".utf8), Array("parent\(layer2)".utf8), from: first)
        try disk.replace(metaDB, with: meta)
        var backend = try disk.cat(snapshots)
        _ = try Self.patch(&backend, Array("kind".utf8) + [3, UInt8(ascii: "p")], Array("kind".utf8) + [9, UInt8(ascii: "p")])
        try disk.replace(snapshots, with: backend)

        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        let problems = root.integrity.problems
        #expect(!root.integrity.ok)
        #expect(problems.contains { $0.contains("meta.db v1/moby/") && $0.contains("/size: -422 bytes is negative") }, "\(problems)")
        #expect(problems.contains { $0.contains("metadata.db v1/snapshots/") && $0.contains("/kind: kind 9 is not a snapshot kind") }, "\(problems)")
        #expect(problems.contains { $0.contains("v1/moby/snapshots/overlayfs/\(layer2)/parent: the snapshot is its own parent") }, "\(problems)")
    }

    @Test("Malformed, duplicated and path-climbing Podman records are problems naming their file, and are left out")
    func malformedPodmanRecords() throws {
        let disk = try MutatedDisk("podman-root.img", partition: 2)
        defer { disk.remove() }
        let storage = "/var/lib/containers/storage"
        func edit(_ file: String, _ change: (inout [Any]) throws -> Void) throws {
            var records = try #require(try JSONSerialization.jsonObject(with: Data(try disk.cat("\(storage)/\(file)"))) as? [Any])
            try change(&records)
            try disk.replace("\(storage)/\(file)", with: Array(try JSONSerialization.data(withJSONObject: records)))
        }
        try edit("overlay-images/images.json") { records in
            var climbing = try #require(records[0] as? [String: Any])
            climbing["id"] = "../../x"
            records += [records[0], climbing, 42, ["names": ["no-id"]]]
        }
        try edit("overlay-layers/layers.json") { records in records.append(["parent": "x"]) }
        try edit("overlay-containers/containers.json") { records in
            var climbing = try #require(records[0] as? [String: Any])
            climbing["id"] = "../../../etc"
            records += [climbing, records[1]]
        }
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        let problems = root.integrity.problems
        #expect(root.images.count == 2 && root.containers.count == 2, "\(root.images.map(\.id)) \(root.containers.map(\.id))")
        for expected in ["overlay-images/images.json: image \(root.images[0].id.dropFirst(7)) is listed more than once; record 2 ignored",
                         "overlay-images/images.json: image id \"../../x\" is not a single path component; ignored",
                         "overlay-images/images.json: record 4 is not a JSON object; ignored",
                         "overlay-images/images.json: image record 5 has no id; ignored",
                         "overlay-layers/layers.json: layer record",
                         "overlay-containers/containers.json: container id \"../../../etc\" is not a single path component; ignored",
                         "overlay-containers/containers.json: container \(root.containers[1].id) is listed more than once"] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) not in \(problems)")
        }
    }

    @Test("Manifest sizes of 2^63-1 (untrusted JSON) give an unknown image size, not an overflow trap")
    func hugeManifestSizes() throws {
        let disk = try MutatedDisk("containerd-root.img")
        defer { disk.remove() }
        let web = try #require(try Disk(path: disk.path).docker().dataRoots.first?.images.first { $0.tags.contains("example/web:1.0") })
        let file = { (digest: String) in "\(Self.content)/\(digest.dropFirst(7))" }
        var manifestDigest = web.id
        var object = try #require(try JSONSerialization.jsonObject(with: Data(try disk.cat(file(web.id)))) as? [String: Any])
        if let list = object["manifests"] as? [[String: Any]] {
            manifestDigest = try #require(list.first { ($0["platform"] as? [String: Any])?["os"] as? String != "unknown" }?["digest"] as? String)
            object = try #require(try JSONSerialization.jsonObject(with: Data(try disk.cat(file(manifestDigest)))) as? [String: Any])
        }
        var layers = try #require(object["layers"] as? [[String: Any]])
        for i in layers.indices { layers[i]["size"] = Int64.max }
        object["layers"] = layers
        try disk.replace(file(manifestDigest), with: Array(try JSONSerialization.data(withJSONObject: object)))
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        let image = try #require(root.images.first { $0.id == web.id })
        #expect(image.size == nil)
        #expect(root.integrity.problems.contains { $0.contains("\(manifestDigest.dropFirst(7)): content is sha256:") })
    }
}

