import Codecs
import DiskImage
import Foundation
import Testing
import TestSupport

/// Test input: text-like (compressible) data followed by pseudo-random bytes, so that the
/// encoders use both matches and literals.
func codecSample(_ count: Int = 200_000) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    var line = 0
    while bytes.count < count / 2 {
        bytes.append(contentsOf: Array("line \(line) of the sample, value \(line * 7919 % 1000)\n".utf8))
        line += 1
    }
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    while bytes.count < count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(UInt8(truncatingIfNeeded: state >> 33))
    }
    return Array(bytes.prefix(count))
}

/// Compresses with an external tool: the input goes to a temporary file whose path is the last
/// argument, the compressed bytes come from standard output.
func compressWithTool(_ arguments: [String], _ input: [UInt8]) throws -> [UInt8] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-codec-\(getpid())-\(UInt64.random(in: 0 ... .max))")
    try Data(input).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let output = [UInt8](try TestImages.run(arguments + [file.path]))
    #expect(!output.isEmpty, "\(arguments.joined(separator: " ")) wrote nothing")
    return output
}

/// Round trip, exact output, output buffer one byte too small, a truncated block, and a block with
/// flipped bytes in its middle: every failure must be an `FWError`, never a crash.
func checkCodec(_ codec: any Decompressor, compressed: [UInt8], original: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let out = try codec.decompress(compressed, maximumOutput: original.count)
    let exact = out == original
    #expect(exact, "\(codec.name) round trip: \(out.count) bytes of \(original.count)", sourceLocation: sourceLocation)
    let roomy = try codec.decompress(compressed, maximumOutput: original.count + 4096)
    let roomyExact = roomy == original
    #expect(roomyExact, "\(codec.name) with a larger buffer: \(roomy.count) bytes", sourceLocation: sourceLocation)
    #expect(throws: FWError.self, "\(codec.name) output too small", sourceLocation: sourceLocation) {
        _ = try codec.decompress(compressed, maximumOutput: original.count - 1)
    }
    #expect(throws: FWError.self, "\(codec.name) truncated", sourceLocation: sourceLocation) {
        _ = try codec.decompress(Array(compressed.prefix(compressed.count / 2)), maximumOutput: original.count)
    }
    #expect(throws: FWError.self, "\(codec.name) empty", sourceLocation: sourceLocation) {
        _ = try codec.decompress([], maximumOutput: original.count)
    }
}

/// Corrupt data must either fail with an `FWError` or (for formats without a checksum) produce
/// different output; it must never crash or write past the buffer.
func checkCorruption(_ codec: any Decompressor, compressed: [UInt8], original: [UInt8], mustFail: Bool,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    var bad = compressed
    for i in stride(from: bad.count / 3, to: bad.count * 2 / 3, by: 7) { bad[i] ^= 0x5A }
    do {
        let out = try codec.decompress(bad, maximumOutput: original.count)
        #expect(!mustFail, "\(codec.name) accepted a corrupt block", sourceLocation: sourceLocation)
        let changed = out != original
        #expect(changed, "\(codec.name) ignored the corruption", sourceLocation: sourceLocation)
    } catch {
        #expect(error is FWError, "\(codec.name): \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("Block codecs: zlib, xz, lzma, lzo, zstd")
struct BlockCodecTests {
    let sample = codecSample()

    @Test("zlib streams from Python's zlib, any window size")
    func zlib() throws {
        for (level, wbits) in [(9, 15), (1, 12), (6, 9)] {
            let compressed = try compressWithTool(["python3", "-c", """
                import sys, zlib
                c = zlib.compressobj(\(level), zlib.DEFLATED, \(wbits))
                sys.stdout.buffer.write(c.compress(open(sys.argv[1], "rb").read()) + c.flush())
                """], sample)
            try checkCodec(Zlib(), compressed: compressed, original: sample)
            checkCorruption(Zlib(), compressed: compressed, original: sample, mustFail: true)
        }
        #expect(Zlib().name == "gzip")
    }

    @Test("xz streams from the xz tool, with and without a BCJ filter")
    func xz() throws {
        for args in [["xz", "-c", "--check=crc32"], ["xz", "-c", "--check=none", "--x86", "--lzma2=preset=6"], ["xz", "-c", "-0"]] {
            let compressed = try compressWithTool(args, sample)
            try checkCodec(XZ(), compressed: compressed, original: sample)
            checkCorruption(XZ(), compressed: compressed, original: sample, mustFail: true)
        }
    }

    @Test("xz rejects garbage after the stream and a legacy lzma block")
    func xzStrict() throws {
        let compressed = try compressWithTool(["xz", "-c"], sample)
        #expect(throws: FWError.self) { _ = try XZ().decompress(compressed + [1, 2, 3, 4], maximumOutput: sample.count) }
        let alone = try compressWithTool(["xz", "-c", "--format=lzma"], sample)
        #expect(throws: FWError.self) { _ = try XZ().decompress(alone, maximumOutput: sample.count) }
    }

    @Test("legacy lzma (lzma_alone) from the xz tool and Python, known and unknown size")
    func lzma() throws {
        let streamed = try compressWithTool(["xz", "-c", "--format=lzma"], sample)
        try checkCodec(LegacyLZMA(), compressed: streamed, original: sample)
        let python = try compressWithTool(["python3", "-c", """
            import sys, lzma
            sys.stdout.buffer.write(lzma.compress(open(sys.argv[1], "rb").read(), format=lzma.FORMAT_ALONE))
            """], sample)
        try checkCodec(LegacyLZMA(), compressed: python, original: sample)
        checkCorruption(LegacyLZMA(), compressed: streamed, original: sample, mustFail: false)
        let xz = try compressWithTool(["xz", "-c"], sample)
        #expect(throws: FWError.self) { _ = try LegacyLZMA().decompress(xz, maximumOutput: sample.count) }
    }

    @Test("zstd frames from the zstd tool, several levels")
    func zstd() throws {
        for level in ["-1", "-19", "--ultra", "--no-check"] {
            let compressed = try compressWithTool(["zstd", "-c", "-q", level], sample)
            try checkCodec(Zstd(), compressed: compressed, original: sample)
            checkCorruption(Zstd(), compressed: compressed, original: sample, mustFail: false)
        }
        let checked = try compressWithTool(["zstd", "-c", "-q", "--check"], sample)
        checkCorruption(Zstd(), compressed: checked, original: sample, mustFail: true)
    }

    /// No lzo command-line tool is installed: mksquashfs (liblzo2) compresses one 128 KiB file
    /// into one data block that starts right after the superblock and ends where the inode
    /// table starts.
    @Test("lzo1x blocks written by mksquashfs through liblzo2", arguments: ["lzo1x_1", "lzo1x_999"])
    func lzo(algorithm: String) throws {
        let original = Array(codecSample(131072))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-lzo-\(algorithm)-\(getpid())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("src"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(original).write(to: dir.appendingPathComponent("src/file"))
        let image = dir.appendingPathComponent("lzo.img").path
        try TestImages.run(["mksquashfs", dir.appendingPathComponent("src").path, image, "-comp", "lzo", "-Xalgorithm", algorithm,
                            "-noI", "-noX", "-no-fragments", "-no-xattrs", "-noappend", "-quiet", "-no-progress"])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let superblock = ByteCursor(bytes, context: "test superblock")
        let flags = try superblock.u16le(at: 24)
        var start = 96
        if flags & 0x0400 != 0 {
            // Compressor options: a metadata block (2-byte header) after the superblock.
            start += 2 + Int(try superblock.u16le(at: 96) & 0x7FFF)
        }
        let end = Int(try superblock.u64le(at: 64))
        let block = Array(bytes[start..<end])
        #expect(block.count < original.count, "the block should be stored compressed")
        try checkCodec(LZO(), compressed: block, original: original)
        checkCorruption(LZO(), compressed: block, original: original, mustFail: false)
        #expect(throws: FWError.self) { _ = try LZO().decompress(block + [0x11, 0, 0], maximumOutput: original.count) }
    }

    @Test("every codec rejects random bytes without crashing")
    func randomInput() {
        let noise = Array(codecSample(4096).suffix(2000))
        let codecs: [any Decompressor] = [Zlib(), XZ(), LegacyLZMA(), Zstd(), LZO()]
        for codec in codecs {
            do {
                let out = try codec.decompress(noise, maximumOutput: 8192)
                #expect(out.count <= 8192)
            } catch {
                #expect(error is FWError, "\(codec.name): \(error)")
            }
        }
        // Formats with a magic number or header check cannot accept noise.
        for codec in [Zlib(), XZ(), Zstd()] as [any Decompressor] {
            #expect(throws: FWError.self, "\(codec.name)") { _ = try codec.decompress(noise, maximumOutput: 8192) }
        }
    }
}
