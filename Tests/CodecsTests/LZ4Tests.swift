import CLZ4
import Codecs
import DiskImage
import Testing

/// LZ4 blocks made by liblz4's own compressor (the EROFS and squashfs images cover lz4 and lz4hc
/// blocks made by mkfs.erofs and mksquashfs).
@Suite("LZ4 decompressor")
struct LZ4Tests {
    static func compress(_ input: [UInt8], fast: Bool = false) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(LZ4_compressBound(Int32(input.count))))
        let n = input.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                let s = src.baseAddress!.assumingMemoryBound(to: CChar.self)
                let d = dst.baseAddress!.assumingMemoryBound(to: CChar.self)
                return fast ? LZ4_compress_fast(s, d, Int32(input.count), Int32(dst.count), 20)
                            : LZ4_compress_default(s, d, Int32(input.count), Int32(dst.count))
            }
        }
        return Array(out[0..<Int(n)])
    }

    static let sample: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: ($0 / 7) &* 31 ^ ($0 % 251)) }

    @Test("round trip, default and fast (acceleration 20) compression", arguments: [false, true])
    func roundTrip(fast: Bool) throws {
        let packed = Self.compress(Self.sample, fast: fast)
        #expect(packed.count < Self.sample.count)
        #expect(try LZ4().decompress(packed, maximumOutput: Self.sample.count) == Self.sample)
        #expect(LZ4().name == "lz4")
    }

    @Test("partial decoding yields a prefix and tolerates trailing padding")
    func partial() throws {
        let packed = Self.compress(Self.sample) + [UInt8](repeating: 0xAB, count: 300)
        var out = [UInt8](repeating: 0, count: Self.sample.count)
        let n = try packed.withUnsafeBytes { inp in
            try out.withUnsafeMutableBytes { try LZ4().decompressPartial(inp, into: $0, targetSize: 5000) }
        }
        #expect(n == 5000)
        #expect(Array(out[0..<5000]) == Array(Self.sample[0..<5000]))
    }

    @Test("corrupt input, short output and empty input throw .corrupt")
    func corrupt() throws {
        let packed = Self.compress(Self.sample)
        #expect(throws: FWError.self) { try LZ4().decompress(packed, maximumOutput: 1000) }
        #expect(throws: FWError.self) { try LZ4().decompress([], maximumOutput: 10) }
        var bad = packed
        for i in stride(from: 1, to: bad.count, by: 3) { bad[i] = 0xFF }
        let error = try #require(throws: FWError.self) { try LZ4().decompress(bad, maximumOutput: Self.sample.count) }
        #expect(error.code == .corrupt)
        #expect(throws: FWError.self) { try LZ4().decompress(Array(packed[0..<(packed.count / 2)]), maximumOutput: Self.sample.count) }
    }
}
