import FileSystemBtrfs
import Foundation
import TestSupport
import Testing

/// btrfs-progs' own test images (nobody here made them: crafted and fuzzed filesystems from its
/// bug reports, fsck and misc tests), fetched by images/fetch-btrfs-progs.sh with `apt-get source`
/// into /tmp (GPL-2.0, never committed). Every image, through the CLI under a time limit, ends
/// with exit 0 or 1: no signal, no hang. btrfs-image dumps (*.img) are read as they are (a clear
/// "not btrfs" error) and, restored by `btrfs-image -r` where it can, as filesystems.
enum BtrfsProgsImages {
    static let directory = ProcessInfo.processInfo.environment["FWA_BTRFS_PROGS"] ?? "/tmp/fwassemble-btrfs-progs"

    /// The tests/ folder, fetched once; nil (the tests skip) when it cannot be fetched.
    static let tests: String? = {
        let script = TestImages.repositoryRoot.appendingPathComponent("images/fetch-btrfs-progs.sh").path
        guard (try? TestImages.run(["bash", script, directory])) != nil else { return nil }   // no network: skip
        return directory + "/tests"
    }()

    /// Every image file under tests/*-tests/*/ (and the fuzz images), sorted.
    static func images() throws -> [String] {
        guard let tests else { return [] }
        let all = try FileManager.default.subpathsOfDirectory(atPath: tests)
        return all.filter { p in [".raw.xz", ".img", ".img.xz", ".raw"].contains { p.hasSuffix($0) } }.sorted().map { tests + "/" + $0 }
    }

    /// The image as a raw file in `scratch`: decompressed, a btrfs-image dump restored (nil when
    /// `btrfs-image -r` refuses it).
    static func materialise(_ image: String, in scratch: String) -> [String] {
        var name = URL(fileURLWithPath: image).lastPathComponent
        var path = image
        if name.hasSuffix(".xz") {
            name = String(name.dropLast(3))
            path = scratch + "/" + name
            guard (try? TestImages.run(["sh", "-c", "xz -dc \"$0\" > \"$1\"", image, path])) != nil else { return [image] }   // a broken .xz: read it as it is
        }
        guard name.hasSuffix(".img") else { return [path] }
        let restored = scratch + "/" + name + ".restored"
        if (try? TestImages.run(["timeout", "60", "btrfs-image", "-r", path, restored])) != nil {   // not every dump restores
            return [path, restored]
        }
        return [path]
    }

    /// Runs the CLI under `timeout -s KILL`: the exit status (137 when it was killed).
    static func run(_ arguments: [String], seconds: Int = 120) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-s", "KILL", String(seconds), try #require(CLI.path)] + arguments
        process.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return (status, String(decoding: data, as: UTF8.self))
    }
}

private typealias CLI = FwassembleCLI

@Suite("btrfs-progs' test images", .enabled(if: FwassembleCLI.path != nil, "the CLI is not built"))
struct BtrfsProgsImageTests {
    @Test("every image: inspect and extract end with exit 0 or 1, no signal, no hang")
    func everyImage() throws {
        let images = try BtrfsProgsImages.images()
        guard !images.isEmpty else { return }   // not fetched (no network): skipped
        #expect(images.count > 100)
        var read = 0, refused = 0
        for image in images {
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("btrfs-progs-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            for raw in BtrfsProgsImages.materialise(image, in: scratch) {
                let inspect = try BtrfsProgsImages.run(["inspect", "--json", raw])
                #expect(inspect.status == 0 || inspect.status == 1, "inspect \(image): exit \(inspect.status)\n\(inspect.stderr.suffix(2000))")
                let extract = try BtrfsProgsImages.run(["extract", raw, "--partition", "1", "-q", "--compression", "none", "-o", scratch + "/out.tar"])
                #expect(extract.status == 0 || extract.status == 1, "extract \(raw): exit \(extract.status)\n\(extract.stderr.suffix(2000))")
                if extract.status == 1 {
                    #expect(!extract.stderr.isEmpty, "\(raw): exit 1 without a message")
                    refused += 1
                } else {
                    read += 1
                }
                try? FileManager.default.removeItem(atPath: scratch + "/out.tar")   // may not exist
            }
        }
        // Most of them are damaged on purpose; many still read (a damage the reader does not meet).
        #expect(read > 30, "read \(read), refused \(refused)")
    }

    @Test("misc-tests/025-zstd-compression: three files of 200 KiB of zeros, written with zlib, lzo and zstd")
    func zstdCompression() throws {
        guard let tests = BtrfsProgsImages.tests else { return }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("btrfs-025-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let raw = try #require(BtrfsProgsImages.materialise(tests + "/misc-tests/025-zstd-compression/compress.raw.xz", in: scratch).first)
        let r = try CLI.run(["extract", raw, "--partition", "1", "-q", "--compression", "none", "-o", scratch + "/out.tar"])
        try #require(r.status == 0, "\(r.stderr)")
        let manifest = try TestImages.run(["python3", TestImages.repositoryRoot.appendingPathComponent("images/tar_manifest.py").path, scratch + "/out.tar"])
        let entries = try String(decoding: manifest, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
        let zeros = UInt32(truncatingIfNeeded: Int(String(decoding: try TestImages.run(["python3", "-c", "import zlib; print(zlib.crc32(bytes(204800)))"]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1)
        let files = entries.filter { $0.type == "regular" }
        #expect(files.map(\.path).sorted() == ["lzo", "zlib", "zstd"])
        for f in files { #expect(f.size == 204_800 && f.crc32 == zeros, "\(f.path)") }
    }
}

@Suite("btrfs fuzz target")
struct BtrfsFuzzSeedTests {
    /// The committed seed (a small filesystem the kernel filled: zlib/lzo/zstd files, a
    /// subvolume) reaches the files through the sparse image, so the fuzzer starts from inputs
    /// that read.
    @Test func seedReads() throws {
        let url = FuzzCorpusTests.corpusRoot.appendingPathComponent("btrfs/kernel-small")
        let source = try #require(SparseSource([UInt8](try Data(contentsOf: url))))
        let reader = try BtrfsReader(source: source, name: "kernel-small")
        let text = try #require(try reader.lookup("/zstd/text"))
        #expect(try reader.readSmallFile(text).count == Array(1...3000).map { "\($0)\n" }.joined().utf8.count)
        #expect(try reader.subvolumes().map(\.path) == ["", "sub"])
    }
}
