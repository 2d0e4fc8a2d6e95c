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
          arguments: [0, 1, 100, GzipSink.chunkSize, GzipSink.chunkSize + 1, 3 * GzipSink.chunkSize + 17, 3_000_000])
    func gzipRoundTrip(size: Int) throws {
        let input = testBytes(size, seed: UInt64(size) + 1)
        let gz = try compress(input, .gzip(level: 6), threads: 3)
        // libdeflate's header: no name, MTIME 0, XFL 0 at level 6, OS 255 (unknown).
        #expect(Array(gz.prefix(10)) == [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF])
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

    /// A tar of more than three chunks is four gzip members; every reader that rehosting and
    /// extraction pipelines use reads it as one stream: gzip, zcat, pigz, Python's gzip and
    /// tarfile, GNU tar, bsdtar and Go's compress/gzip.
    @Test("A multi-member archive reads as one stream in gzip, zcat, pigz, Python, GNU tar, bsdtar and Go")
    func multiMemberReaders() throws {
        let tree = TestTree()
        let big = testBytes(3 * GzipSink.chunkSize + 12345, seed: 5)
        tree.add("big.bin", .regular, perm: 0o644, content: big)
        tree.add("etc", .directory, perm: 0o755)
        tree.add("etc/hostname", .regular, perm: 0o644, content: Array("homeassistant\n".utf8))
        let out = MemorySink()
        let tar = TarWriter(sink: try Compression.gzip(level: 6).sink(over: out, threads: 2))
        _ = try Archiver.archive(tree, into: tar)
        try tar.finish()
        let names = "./\n./big.bin\n./etc/\n./etc/hostname\n"
        try withFile(out.bytes, name: "a.tar.gz") { path in
            // Members: each starts with the gzip magic after the previous one's end.
            let members = try TestImages.run(["python3", "-c", """
                import sys, zlib
                data, n = open(sys.argv[1], 'rb').read(), 0
                while data:
                    d = zlib.decompressobj(31); d.decompress(data); data = d.unused_data; n += 1
                print(n)
                """, path])
            #expect(String(decoding: members, as: UTF8.self) == "4\n")
            try TestImages.run(["gzip", "-t", path])
            let tarBytes = Int(tar.bytesWritten)
            for command in [["sh", "-c", "zcat \"$1\" | wc -c", "sh", path], ["sh", "-c", "pigz -dc \"$1\" | wc -c", "sh", path],
                            ["python3", "-c", "import gzip,sys; print(len(gzip.open(sys.argv[1]).read()))", path]] {
                let n = String(decoding: try TestImages.run(command), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(Int(n) == tarBytes, "\(command)")
            }
            let py = try TestImages.run(["python3", "-c", "import tarfile,sys; print(''.join(m.name + ('/' if m.isdir() else '') + '\\n' for m in tarfile.open(sys.argv[1])), end='')", path])
            #expect(String(decoding: py, as: UTF8.self) == names)
            #expect(String(decoding: try TestImages.run(["tar", "-tzf", path]), as: UTF8.self) == names)
            #expect(String(decoding: try TestImages.run(["bsdtar", "-tzf", path]), as: UTF8.self) == names)
            // The whole content, byte for byte, through GNU tar and bsdtar.
            for tool in ["tar", "bsdtar"] {
                let content = try TestImages.run(["sh", "-c", "\(tool) -xzOf \"$1\" ./big.bin", "sh", path])
                #expect([UInt8](content) == big, "\(tool)")
            }
            // Go's compress/gzip (multistream by default), as Go-based extraction tools read it.
            let dir = try Scratch.directory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let program = dir.appendingPathComponent("main.go")
            try Scratch.write(Array("""
                package main
                import ("compress/gzip"; "fmt"; "hash/crc32"; "io"; "os")
                func main() {
                    f, _ := os.Open(os.Args[1]); r, err := gzip.NewReader(f)
                    if err != nil { panic(err) }
                    h := crc32.NewIEEE(); n, err := io.Copy(h, r)
                    if err != nil { panic(err) }
                    fmt.Println(n, h.Sum32())
                }
                """.utf8), to: program)
            let tarCRC = CRC32.checksum([UInt8](try TestImages.run(["sh", "-c", "zcat \"$1\"", "sh", path])))
            let go = try TestImages.run(["env", "GOCACHE=\(dir.path)/cache", "GOPATH=\(dir.path)/gopath", "HOME=\(dir.path)",
                                         "go", "run", program.path, path])
            #expect(String(decoding: go, as: UTF8.self) == "\(tarBytes) \(tarCRC)\n")
        }
    }

    @Test("Bad levels are refused")
    func badLevels() {
        #expect(throws: FWError.self) { try Compression(name: "gzip", level: 0) }
        #expect(throws: FWError.self) { try Compression(name: "gzip", level: 13) }
        #expect(throws: FWError.self) { try Compression(name: "lz77") }
        #expect(throws: FWError.self) { try GzipSink(downstream: MemorySink(), level: 13) }
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
        let output = try OutputTarget(target)
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
            let out = try OutputTarget(target)
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
            _ = try OutputTarget(target)   // dropped without commit
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        let out = try OutputTarget(target)
        try out.sink.write(Array("done".utf8))
        try out.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.tar"])
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "done")
        #expect(throws: FWError.self) { try OutputTarget(dir.appendingPathComponent("missing/x.tar").path) }
    }

    /// An output that exists and is not a regular file (a copy of /dev/null made with mknod, a
    /// FIFO) is written in place: renaming a temporary file over it would replace the device node
    /// with a regular file (as root, `-o /dev/null` once did exactly that to the machine's).
    @Test("Output file: a device or FIFO target is written in place, never replaced")
    func outputFileDevice() throws {
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let null = dir.appendingPathComponent("null").path
        let fifo = dir.appendingPathComponent("fifo").path
        try TestImages.run(["mkfifo", fifo])
        var targets = [fifo]
        if getuid() == 0 {
            try TestImages.run(["mknod", "-m", "666", null, "c", "1", "3"])
            targets.append(null)
        }
        for target in targets {
            let reader = target == fifo ? try startReader(fifo) : nil
            let out = try OutputTarget(target)
            #expect(out.temporaryPath == nil)
            try out.sink.write(Array("archive bytes".utf8))
            try out.commit()
            if let reader {
                // The reader ends once the writer closes the FIFO (it would wait forever if the
                // FIFO had been replaced instead of written).
                for _ in 0..<100 where reader.isRunning { usleep(100_000) }
                #expect(!reader.isRunning, "nothing was written into the FIFO")
                if reader.isRunning { reader.terminate() }
            }
            let kind = try FileManager.default.attributesOfItem(atPath: target)[.type] as? FileAttributeType
            #expect(kind != .typeRegular, "\(target) was replaced by a regular file")
            if target == null { #expect(kind == .typeCharacterSpecial) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == (getuid() == 0 ? ["fifo", "null"] : ["fifo"]))
        }
    }

    /// `cat FIFO > /dev/null` in the background, so that opening the FIFO for writing does not block.
    private func startReader(_ fifo: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "cat \"$0\" > /dev/null", fifo]
        try p.run()
        return p
    }
}
