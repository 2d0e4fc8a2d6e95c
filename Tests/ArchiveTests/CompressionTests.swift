import Archive
import DiskImage
import FileSystems
import Foundation
import TestSupport
import Testing

@Suite("Parallel gzip and zstd")
struct CompressionTests {
    private func compress(_ input: [UInt8], _ compression: Compression, threads: Int, writeSize: Int = 70_001) throws -> [UInt8] {
        let out = MemorySink()
        let sink = try compression.sink(over: out, threads: threads)
        var offset = 0
        while offset < input.count {
            let n = min(writeSize, input.count - offset)
            try input.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
            offset += n
        }
        try sink.finish()
        #expect(out.finished)
        return out.bytes
    }

    private func withFile<T>(_ bytes: [UInt8], name: String = "x.gz", _ body: (String) throws -> T) throws -> T {
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Scratch.write(bytes, to: url)
        return try body(url.path)
    }

    @Test("gzip -t, pigz -dc and Python gzip accept the stream and give the input back",
          arguments: [0, 1, 100, 131_072, 131_073, 5 * 131_072 + 17, 3_000_000])
    func gzipRoundTrip(size: Int) throws {
        let input = testBytes(size, seed: UInt64(size) + 1)
        let gz = try compress(input, .gzip(level: 6), threads: 3)
        #expect(Array(gz.prefix(10)) == [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03])
        let (pigz, py) = try withFile(gz) { path in
            try TestImages.run(["gzip", "-t", path])
            return ([UInt8](try TestImages.run(["pigz", "-dc", path])),
                    try TestImages.run(["python3", "-c", "import gzip,sys,zlib; d=gzip.open(sys.argv[1]).read(); print(len(d), zlib.crc32(d))", path]))
        }
        #expect(pigz == input)
        #expect(String(decoding: py, as: UTF8.self) == "\(input.count) \(CRC32.checksum(input))\n")
    }

    @Test("Same bytes for every thread count, write size and run", arguments: [1, 6, 9])
    func gzipDeterministic(level: Int) throws {
        let input = testBytes(1_500_000, seed: 42)
        let reference = try compress(input, .gzip(level: level), threads: 1)
        for threads in [1, 2, 4, 7] {
            for writeSize in [1, 4096, 1 << 20] where !(writeSize == 1 && threads > 2) {
                let out = try compress(input, .gzip(level: level), threads: threads, writeSize: writeSize)
                #expect(out == reference, "level \(level) threads \(threads) write size \(writeSize)")
            }
        }
        let unpacked = try withFile(reference) { path in [UInt8](try TestImages.run(["pigz", "-dc", path])) }
        #expect(unpacked == input)
    }

    @Test("Bad levels are refused")
    func badLevels() {
        #expect(throws: FWError.self) { try Compression(name: "gzip", level: 0) }
        #expect(throws: FWError.self) { try Compression(name: "gzip", level: 10) }
        #expect(throws: FWError.self) { try Compression(name: "lz77") }
        #expect(throws: FWError.self) { try GzipSink(downstream: MemorySink(), level: 11) }
    }

    @Test("zstd: the zstd tool and Python accept it; thread count does not change the bytes")
    func zstdRoundTrip() throws {
        let input = testBytes(2_500_000, seed: 3)
        let one = try compress(input, .zstd(level: 3), threads: 1)
        let four = try compress(input, .zstd(level: 3), threads: 4)
        #expect(one == four)
        let back = try withFile(one, name: "x.zst") { path in
            try TestImages.run(["zstd", "-tq", path])
            return [UInt8](try TestImages.run(["zstd", "-dcq", path]))
        }
        #expect(back == input)
        let empty = try compress([], .zstd(level: 3), threads: 2)
        let emptyBack = try withFile(empty, name: "e.zst") { path in try TestImages.run(["zstd", "-dcq", path]) }
        #expect(emptyBack.isEmpty)
    }

    @Test("A 50 MB file through tar + gzip to a file, read back with pigz and Python tarfile")
    func largeRoundTrip() throws {
        let t = TestTree()
        let big = testBytes(50_000_000, seed: 11)
        t.add("big.bin", .regular, perm: 0o644, content: big)
        t.add("after", .regular, perm: 0o600, content: Array("tail\n".utf8))
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("big.tar.gz").path
        let output = try OutputFile(path: target)
        let tar = TarWriter(sink: try Compression.gzip(level: 1).sink(over: output.sink, threads: 2))
        let report = try Archiver.archive(t, into: tar)
        try tar.finish()
        try output.commit()
        #expect(report.problems.isEmpty)
        #expect(report.contentBytes == 50_000_005)
        try TestImages.run(["gzip", "-t", target])
        let m = try Scratch.tarManifest(target)
        #expect(m.map(\.path) == [".", "after", "big.bin"])
        #expect(m.last?.size == 50_000_000)
        #expect(m.last?.crc32 == CRC32.checksum(big))
        let length = try TestImages.run(["sh", "-c", "pigz -dc \"$1\" | wc -c", "sh", target])
        #expect(Int(String(decoding: length, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) == Int(tar.bytesWritten))
    }

    @Test("Output file: renamed into place on commit, removed on abort, none left behind")
    func outputFile() throws {
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("out.tar").path
        do {
            let out = try OutputFile(path: target)
            try out.sink.write(Array("partial".utf8))
            // Unnamed (O_TMPFILE): nothing in the directory; else only the hidden temporary file.
            let visible = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            if let tmp = out.temporaryPath {
                #expect(visible == [URL(fileURLWithPath: tmp).lastPathComponent])
            } else {
                #expect(visible.isEmpty)
            }
            out.abort()
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        do {
            _ = try OutputFile(path: target)   // dropped without commit
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        let out = try OutputFile(path: target)
        try out.sink.write(Array("done".utf8))
        try out.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.tar"])
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "done")
        #expect(throws: FWError.self) { try OutputFile(path: dir.appendingPathComponent("missing/x.tar").path) }
    }
}
