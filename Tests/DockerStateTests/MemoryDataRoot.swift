import DiskImage
import DockerState
import FileSystems
import Foundation
import TestSupport

/// Docker's chain ids computed by Python's hashlib (the independent implementation).
func pythonChainIDs(_ diffs: [String]) throws -> [String] {
    let script = """
        import hashlib, sys
        out = []
        for d in sys.argv[1:]:
            out.append(d if not out else "sha256:" + hashlib.sha256((out[-1] + " " + d).encode()).hexdigest())
        print("\\n".join(out))
        """
    let text = String(decoding: try TestImages.run(["python3", "-c", script] + diffs), as: UTF8.self)
    return text.split(separator: "\n").map(String.init)
}

func pythonSHA256(_ bytes: [UInt8]) throws -> String {
    let hex = bytes.map { String(format: "%02x", $0) }.joined()
    let text = String(decoding: try TestImages.run(["python3", "-c", "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())", hex]),
                      as: UTF8.self)
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// An overlay2 data-root built in memory under `prefix` of a MemoryFileSystem: two images sharing
/// a base layer, whiteouts of a file and of a directory, an opaque directory, hardlinks within
/// and across layers, a running container "web" and "job" exited with 1, a volume.
struct MemoryDataRoot {
    let fs: MemoryFileSystem
    let prefix: String
    var base = "base0000", appA = "appa0000", appB = "appb0000"
    var diffIDs: [String: String] = [:]
    var imageIDs: [String: String] = [:]  // tag -> id
    var chains: [String: [String]] = [:]  // tag -> chain ids
    var containerIDs: [String: String] = [:]
    var mountIDs: [String: String] = [:]
    var links: [String: String] = [:]

    init(fs: MemoryFileSystem = MemoryFileSystem(), prefix: String = "") throws {
        self.fs = fs
        self.prefix = prefix
        try build()
    }

    func p(_ path: String) -> String { prefix.isEmpty ? path : prefix + "/" + path }

    static let whiteout = Metadata(type: .characterDevice, permissions: 0o600, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0),
                                   inode: 0, device: DeviceNumber(major: 0, minor: 0))

    mutating func layer(_ cache: String, short: String, lowers: [String]) -> String {
        fs.addDirectory(p("overlay2/\(cache)/diff"))
        fs.addFile(p("overlay2/\(cache)/link"), short)
        fs.addSymlink(p("overlay2/l/\(short)"), target: "../\(cache)/diff")
        links[cache] = short
        if !lowers.isEmpty {
            fs.addFile(p("overlay2/\(cache)/lower"), lowers.map { "l/" + (links[$0] ?? "?") }.joined(separator: ":"))
        }
        return p("overlay2/\(cache)/diff")
    }

    mutating func build() throws {
        var d = layer(base, short: "SBASE", lowers: [])
        fs.addFile(d + "/bin/sh", Array("#!\n".utf8), permissions: 0o4755)
        let passwd = fs.addFile(d + "/etc/passwd", Array("root:x:0:0\n".utf8))
        fs.addFile(d + "/etc/motd", Array("hi\n".utf8), uid: 1000, gid: 1000)
        fs.addFile(d + "/usr/share/doc/a.txt", "a")
        fs.addFile(d + "/usr/share/doc/b.txt", "b")
        fs.addFile(d + "/opt/old/file.txt", "old")
        fs.addFile(d + "/var/cache/old.txt", "stale")
        let lib = fs.addFile(d + "/lib/libx.so.1", Array(repeating: 7, count: 5000))
        fs.addHardlink(d + "/lib/libx.so", to: lib)
        d = layer(appA, short: "SAPPA", lowers: [base])
        fs.addEntry(d + "/usr/share/doc/a.txt", metadata: Self.whiteout)
        fs.addEntry(d + "/opt/old", metadata: Self.whiteout)
        fs.addDirectory(d + "/var/cache", xattrs: [ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79])])
        fs.addFile(d + "/var/cache/new.txt", "fresh")
        fs.addFile(d + "/app/run.sh", Array("run".utf8), permissions: 0o755)
        fs.addHardlink(d + "/app/passwd-copy", to: passwd)
        d = layer(appB, short: "SAPPB", lowers: [base])
        fs.addFile(d + "/app/job.sh", "job")

        for c in [base, appA, appB] { diffIDs[c] = "sha256:" + String(repeating: String(c.prefix(1)), count: 8) + c }
        for (tag, layers, cmd) in [("example.com/web:1.0", [base, appA], "/app/run.sh"), ("example.com/job:latest", [base, appB], "/app/job.sh")] {
            let diffs = layers.map { diffIDs[$0]! }
            let chainIDs = try pythonChainIDs(diffs)
            for (i, c) in layers.enumerated() {
                let dir = p("image/overlay2/layerdb/sha256/\(chainIDs[i].dropFirst(7))")
                fs.addFile(dir + "/diff", diffs[i])
                fs.addFile(dir + "/cache-id", c)
                fs.addFile(dir + "/size", "\(100 * (i + 1))")
                if i > 0 { fs.addFile(dir + "/parent", chainIDs[i - 1]) }
            }
            let config = """
                {"created": "2024-01-01T00:00:00Z", "config": {"Cmd": ["\(cmd)"], "Entrypoint": ["/bin/sh", "-c"]},
                 "rootfs": {"type": "layers", "diff_ids": [\(diffs.map { "\"\($0)\"" }.joined(separator: ","))]}}
                """
            let id = "sha256:" + SHA256.hex(Array(config.utf8))
            fs.addFile(p("image/overlay2/imagedb/content/sha256/\(id.dropFirst(7))"), config)
            imageIDs[tag] = id
            chains[tag] = chainIDs
        }
        let repos = imageIDs.map { tag, id in "\"\(tag.split(separator: ":")[0])\": {\"\(tag)\": \"\(id)\"}" }.joined(separator: ",")
        fs.addFile(p("image/overlay2/repositories.json"), "{\"Repositories\": {\(repos)}}")

        for (name, tag, running, code, policy) in [("web", "example.com/web:1.0", true, 0, "always"), ("job", "example.com/job:latest", false, 1, "on-failure")] {
            let cid = String(repeating: name, count: 16)
            let mount = "m" + name
            containerIDs[name] = cid
            mountIDs[name] = mount
            let imageLayers = tag.contains("web") ? [appA, base] : [appB, base]
            let initDiff = layer(mount + "-init", short: "SI" + name, lowers: imageLayers)
            fs.addFile(initDiff + "/etc/hostname", name)
            fs.addFile(initDiff + "/.dockerenv", "")
            let rw = layer(mount, short: "SR" + name, lowers: [mount + "-init"] + imageLayers)
            if name == "web" {
                fs.addEntry(rw + "/etc/motd", metadata: Self.whiteout)
                fs.addFile(rw + "/run/web.pid", "42")
            } else {
                fs.addFile(rw + "/var/log/job.log", "failed")
            }
            let m = p("image/overlay2/layerdb/mounts/\(cid)")
            fs.addFile(m + "/mount-id", mount)
            fs.addFile(m + "/init-id", mount + "-init")
            fs.addFile(m + "/parent", chains[tag]!.last!)
            fs.addFile(p("containers/\(cid)/config.v2.json"), """
                {"ID": "\(cid)", "Name": "/\(name)", "Image": "\(imageIDs[tag]!)", "Path": "/bin/sh", "Args": ["-c", "x"],
                 "Config": {"Image": "\(tag)", "Cmd": ["x"], "Labels": {"role": "\(name)"}},
                 "State": {"Running": \(running), "Paused": false, "Restarting": false, "OOMKilled": \(!running), "Dead": false,
                           "ExitCode": \(code), "StartedAt": "2024-02-01T10:00:00Z", "FinishedAt": "2024-02-01T10:00:05Z"},
                 "RestartCount": \(running ? 0 : 3)}
                """)
            fs.addFile(p("containers/\(cid)/hostconfig.json"), "{\"RestartPolicy\": {\"Name\": \"\(policy)\"}}")
        }
        fs.addFile(p("volumes/data/_data/a.bin"), Array(repeating: 1, count: 1234))
        fs.addFile(p("volumes/data/_data/sub/b.bin"), Array(repeating: 2, count: 66))
        fs.addFile(p("volumes/metadata.db"), "x")
    }

    var dataRoot: DataRoot {
        let inode = prefix.isEmpty ? fs.rootInode : ((try? fs.lookup(prefix)) ?? nil) ?? fs.rootInode
        return DataRoot(reader: fs, inode: inode, path: "/dr", engine: "docker")
    }
}
