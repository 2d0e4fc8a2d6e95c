import Foundation
import TestSupport
import Testing

/// `fwassemble extract` run as a program on the disks of images/disks/extract.sh, its archives
/// read back with Python's tarfile (images/tar_manifest.py) and compared with the source tree's
/// manifest and, as root, with the kernel's view of a loop mount.
@Suite("fwassemble extract, end to end")
struct ExtractEndToEndTests {
    struct Run {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    /// The binary SwiftPM builds beside the test bundle.
    static func binary() throws -> String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.appendingPathComponent("fwassemble").path,
        ]
        return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
                            "fwassemble binary not found beside the tests: build the package first")
    }

    static func run(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary())
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes at once: a large stdout must not block on a full stderr pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
    }

    static func sourceManifest() throws -> [ManifestEntry] {
        let url = URL(fileURLWithPath: try TestImages.path("extract.manifest"))
        return try String(decoding: Data(contentsOf: url), as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }.filter { $0.type != "socket" }
    }

    @Test("ext4 partition by GPT name: every field of the source tree, socket reported")
    func ext4ByName() throws {
        let disk = try TestImages.path("extract-gpt.img")
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("root.tar.gz").path
        let r = try Self.run(["extract", disk, "--partition", "rootfs", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("/srv/socket: socket"))
        #expect(r.stderr.contains("(ext4)"))
        try TestImages.run(["gzip", "-t", out])
        let actual = try Scratch.tarManifest(out).filter { $0.path != "lost+found" }
        let diffs = Manifest.differences(expected: try Self.sourceManifest(), actual: actual)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        // Nothing left beside the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["root.tar.gz"])
    }

    @Test("Number, label and name select the same partition; thread count does not change the bytes")
    func selectorsAndDeterminism() throws {
        let disk = try TestImages.path("extract-gpt.img")
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var outputs: [Data] = []
        for (selector, threads) in [("2", "1"), ("extract-root", "2"), ("rootfs", "4")] {
            let out = dir.appendingPathComponent("root-\(selector).tar.gz")
            let r = try Self.run(["extract", disk, "-p", selector, "-o", out.path, "--threads", threads, "-q"])
            #expect(r.status == 0, "\(r.stderr)")
            outputs.append(try Data(contentsOf: out))
        }
        #expect(outputs.count == 3 && outputs.allSatisfy { $0 == outputs[0] })
    }

    @Test("squashfs partition as zstd equals the bare squashfs image streamed to stdout")
    func squashfsPartitionAndBareImage() throws {
        let disk = try TestImages.path("extract-gpt.img")
        let bare = try TestImages.path("extract-squashfs.img")
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let zst = dir.appendingPathComponent("system.tar.zst").path
        let r1 = try Self.run(["extract", disk, "-p", "3", "-o", zst])
        #expect(r1.status == 0, "\(r1.stderr)")
        try TestImages.run(["zstd", "-tq", zst])
        let r2 = try Self.run(["extract", bare, "-p", "1", "-o", "-", "--compression", "none", "-q"])
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(r2.stderr.contains("/srv/socket"))
        let tar = dir.appendingPathComponent("bare.tar")
        try r2.stdout.write(to: tar)
        let fromPartition = try Scratch.tarManifest(zst)
        let fromBare = try Scratch.tarManifest(tar.path)
        #expect(fromPartition == fromBare)
        // squashfs keeps whole seconds only.
        let diffs = Manifest.differences(expected: try Self.sourceManifest(), actual: fromBare, ignoring: [.mtimeNanoseconds])
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    @Test("The archive matches the kernel's loop mount of the same filesystem",
          arguments: [("extract-gpt.img", "2", "ext4"), ("extract-squashfs.img", "1", "squashfs")])
    func kernelView(image: String, partition: String, fstype: String) throws {
        guard TestImages.canLoopMount(fstype) else { return }
        let disk = try TestImages.path(image)
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var offset: UInt64 = 0
        if image == "extract-gpt.img" {
            let info = String(decoding: try TestImages.run(["sgdisk", "-i", partition, disk]), as: UTF8.self)
            let firstLine = try #require(info.split(separator: "\n").first { $0.hasPrefix("First sector:") })
            offset = try #require(firstLine.split(separator: " ").dropFirst(2).first.flatMap { UInt64($0) }) * 512
        }
        let mnt = dir.appendingPathComponent("mnt")
        try FileManager.default.createDirectory(at: mnt, withIntermediateDirectories: true)
        try TestImages.run(["mount", "-t", fstype, "-o", "loop,ro,offset=\(offset)", disk, mnt.path])
        defer { _ = try? TestImages.run(["umount", mnt.path]) }
        let kernel = try Manifest.ofDirectory(mnt.path).filter { $0.type != "socket" }
        let out = dir.appendingPathComponent("root.tar").path
        let r = try Self.run(["extract", disk, "-p", partition, "-o", out, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let diffs = Manifest.differences(expected: kernel, actual: try Scratch.tarManifest(out))
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
    }

    @Test("vfat partition chosen by filesystem label: the two files with their contents")
    func vfatByLabel() throws {
        let disk = try TestImages.path("extract-gpt.img")
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("boot.tar.gz").path
        let r = try Self.run(["extract", disk, "-p", "EXTBOOT", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("partition 1 (boot) (vfat)"))
        let got = try Scratch.tarManifest(out)
        let source = try Self.sourceManifest()
        #expect(got.map(\.path) == [".", "fstab", "hostname"])
        for name in ["fstab", "hostname"] {
            let want = try #require(source.first { $0.path == "etc/" + name })
            let have = try #require(got.first { $0.path == name })
            #expect(have.size == want.size && have.crc32 == want.crc32, "\(name)")
        }
    }

    @Test("Errors exit 1 (or 2 for usage) and leave no output file")
    func errors() throws {
        let disk = try TestImages.path("extract-gpt.img")
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("x.tar.gz").path
        let missing = try Self.run(["extract", disk, "-p", "9", "-o", out])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no partition 9 (by number"))
        let badLevel = try Self.run(["extract", disk, "-p", "2", "-o", out, "--level", "13"])
        #expect(badLevel.status == 2)
        let bareWrongNumber = try Self.run(["extract", try TestImages.path("extract-squashfs.img"), "-p", "2", "-o", out])
        #expect(bareWrongNumber.status == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
