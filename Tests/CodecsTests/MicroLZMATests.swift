import CLZMA
import Codecs
import DiskImage
import Testing

/// MicroLZMA streams made by liblzma's `lzma_microlzma_encoder` (the fs-erofs-lzma image, which
/// Linux also reads, covers the decoder inside EROFS).
@Suite("MicroLZMA decompressor")
struct MicroLZMATests {
    /// Encodes as much of `input` as fits in `capacity` bytes: (consumed input, stream).
    static func encode(_ input: [UInt8], capacity: Int) -> (Int, [UInt8]) {
        var options = lzma_options_lzma()
        _ = lzma_lzma_preset(&options, 6)
        options.dict_size = 65536
        var stream = lzma_stream()
        guard lzma_microlzma_encoder(&stream, &options) == LZMA_OK else { return (0, []) }
        defer { lzma_end(&stream) }
        var out = [UInt8](repeating: 0, count: capacity)
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = inp.baseAddress
                stream.avail_in = inp.count
                stream.next_out = o.baseAddress
                stream.avail_out = o.count
                _ = lzma_code(&stream, LZMA_FINISH)
            }
        }
        return (Int(stream.total_in), Array(out[0..<Int(stream.total_out)]))
    }

    static let sample: [UInt8] = Array((0..<5000).map { "line \($0) of some text\n" }.joined().utf8)

    @Test("round trip of a 4 KiB pcluster, exact and prefix sizes")
    func roundTrip() throws {
        let (used, stream) = Self.encode(Self.sample, capacity: 4096)
        #expect(used > 4096 && stream.count <= 4096)
        let codec = MicroLZMA(dictionarySize: 65536)
        #expect(codec.name == "microlzma")
        #expect(try codec.decompress(stream, maximumOutput: used) == Array(Self.sample[0..<used]))
        var prefix = [UInt8](repeating: 0, count: 1000)
        let n = try stream.withUnsafeBytes { inp in
            try prefix.withUnsafeMutableBytes { try codec.decompress(inp, into: $0, exactSize: false) }
        }
        #expect(n == 1000 && prefix == Array(Self.sample[0..<1000]))
    }

    @Test("corrupt data and a wrong exact size throw .corrupt")
    func corrupt() throws {
        let (used, stream) = Self.encode(Self.sample, capacity: 4096)
        let codec = MicroLZMA(dictionarySize: 65536)
        #expect(throws: FWError.self) { try codec.decompress(stream, maximumOutput: used + 100) }
        var bad = stream
        for i in stride(from: 5, to: bad.count, by: 2) { bad[i] ^= 0x5A }
        let error = try #require(throws: FWError.self) { try codec.decompress(bad, maximumOutput: used) }
        #expect(error.code == .corrupt)
        #expect(throws: FWError.self) { try codec.decompress([], maximumOutput: 10) }
    }
}
