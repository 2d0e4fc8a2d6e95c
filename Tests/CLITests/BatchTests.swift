import DiskImage
import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `fwassemble batch` pieces in Swift: disks found by content, output names, the SHA-256 of a
/// file, and a small batch through the binary. The full batch (timeouts, memory limits, resume
/// after a kill, Dask) is python/tests/test_batch.py.
@Suite struct BatchTests {
    static func temporaryFolder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-batch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test(arguments: ["sample.img", "gpt-4k.img", "bare-fs.img", "fs-squashfs-gzip.img", "fs-erofs-lz4.img", "formats.qcow2",
                      "formats-raw.img.xz", "formats-raw.img.gz", "formats-raw.img.zst", "formats-stream.vmdk.zip",
                      "formats.ova", "formats.vhdx", "formats.vdi", "formats.vhd"])
    func disksAreFoundByContent(_ name: String) throws {
        #expect(BatchInputs.isDiskImage(path: try TestImages.path(name)))
    }

    @Test func otherFilesAreNotDisks() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = dir + "/disk.img"            // a disk's name, not a disk's content
        try String(repeating: "not a disk\n", count: 100).write(toFile: text, atomically: true, encoding: .utf8)
        try TestImages.run(["gzip", "-k", text])
        let random = dir + "/random.qcow2"
        try Data((0..<100_000).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: random))
        // An archive of an earlier batch: a gzip-wrapped tar, not an OVA.
        let tarball = dir + "/old.rootfs.tar.gz"
        try TestImages.run(["tar", "-czf", tarball, "-C", dir, "disk.img"])
        for path in [text, text + ".gz", random, tarball, try TestImages.path("fs-ext4.manifest")] {
            #expect(!BatchInputs.isDiskImage(path: path), "\(path)")
        }
        #expect(try BatchInputs.expand([dir]).isEmpty)
    }

    @Test func foldersListsAndDuplicates() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/a/b", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/a/b/one", withDestinationPath: try TestImages.path("mender.img"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/a/two.bin", withDestinationPath: try TestImages.path("formats.qcow2"))
        try "# a list\n\na/b/one\n../\(URL(fileURLWithPath: dir).lastPathComponent)/a/two.bin\n"
            .write(toFile: dir + "/list.txt", atomically: true, encoding: .utf8)
        #expect(try BatchInputs.expand([dir + "/a"]) == [dir + "/a/b/one", dir + "/a/two.bin"])
        #expect(try BatchInputs.expand(["@" + dir + "/list.txt", dir + "/a/./b/one", dir + "/a"]) == [dir + "/a/b/one", dir + "/a/two.bin"])
        #expect(throws: FWError.self) { try BatchInputs.expand([dir + "/missing.img"]) }
        let fifo = dir + "/pipe.img"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: FWError.self) { try BatchInputs.expand([fifo]) }   // would hang the hashing
    }

    @Test func outputNamesNeverCollide() {
        let names = Batch.outputNames(for: ["/x/a/firmware.img", "/x/b/firmware.img", "/x/c/other.img.xz"], suffix: ".rootfs.tar.gz")
        #expect(Set(names).count == 3)
        #expect(names[2] == "other.rootfs.tar.gz")
        let again = Batch.outputNames(for: ["/x/b/firmware.img", "/y/firmware.img", "/x/a/firmware.img"], suffix: ".rootfs.tar.gz")
        #expect(again[2] == names[0] && again[0] == names[1])   // from the path alone, not the order or the others
        #expect(names[0].hasPrefix("firmware-") && names[0].count == "firmware-12345678.rootfs.tar.gz".count)
    }

    @Test func sha256OfAFileIsSha256sums() throws {
        let path = try TestImages.path("openwrt.img")
        let tool = String(decoding: try TestImages.run(["sha256sum", path]), as: UTF8.self).split(separator: " ").first.map(String.init)
        #expect(try SHA256.hex(ofFileAt: path) == tool)
        // Pieces of every length through one hasher give the digest of the whole.
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = SHA256()
        var offset = 0
        for size in [0, 1, 63, 64, 65, 127, 200, 480] {
            hasher.update(bytes[offset..<(offset + size)])
            offset += size
        }
        #expect(offset == bytes.count)
        #expect(hasher.finalizeHex() == SHA256.hex(bytes))
    }

    @Test(.enabled(if: FwassembleCLI.path != nil, "fwassemble binary not built"))
    func aSmallBatchThroughTheBinary() throws {
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let damaged = dir + "/damaged.qcow2"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try TestImages.path("formats.qcow2")))
        bytes[7] = 9                               // qcow2 version 9
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let good = try TestImages.path("fs-erofs-lz4.img")
        let r = try FwassembleCLI.run(["batch", good, damaged, "-o", dir + "/out", "--jobs", "2", "--timeout", "120"])
        #expect(r.status == 1, "\(r.stderr)")
        let lines = try String(contentsOfFile: dir + "/out/results.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONDecoder().decode(BatchRecord.self, from: Data($0.utf8)) }
        #expect(records.count == 2)
        let ok = try #require(records.first { $0.image == good })
        #expect(ok.status == .ok && ok.exitCode == 0 && ok.summary != nil)
        #expect(ok.outputSHA256 == (try SHA256.hex(ofFileAt: try #require(ok.output))))
        let single = dir + "/single.tar.gz"
        #expect(try FwassembleCLI.run(["assemble", good, "-q", "-o", single]).status == 0)
        #expect(try SHA256.hex(ofFileAt: single) == ok.outputSHA256)
        let bad = try #require(records.first { $0.image == damaged })
        #expect(bad.status == .failed && bad.exitCode == 1 && bad.output == nil)
        #expect(bad.error?.contains("qcow2 version 9") == true)
        // Usage errors exit 2.
        #expect(try FwassembleCLI.run(["batch", dir + "/missing", "-o", dir]).status == 2)
        #expect(try FwassembleCLI.run(["batch", good]).status == 2)
    }
}
