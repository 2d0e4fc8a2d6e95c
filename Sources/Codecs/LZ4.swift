internal import CLZ4
import DiskImage

/// LZ4 block format (not the frame format), as squashfs and EROFS store it; LZ4HC output is the
/// same block format and decodes with the same function.
///
/// Wraps liblz4's `LZ4_decompress_safe` (which never writes past `output` and rejects malformed
/// input) and `LZ4_decompress_safe_partial` (for callers that need only a prefix of a block's
/// output, or whose input may be followed by padding, as EROFS pclusters without 0PADDING are).
public struct LZ4: Decompressor {
    public let name = "lz4"

    public init() {}

    /// Decompresses one whole LZ4 block: `input` must be exactly the compressed block.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, srcSize) = try Self.check(input)
        guard let dst = output.baseAddress, output.count > 0 else {
            throw FWError.corrupt("lz4: no room for output")
        }
        let dstCapacity = Int32(clamping: output.count)
        let n = LZ4_decompress_safe(src, UnsafeMutableRawPointer(dst).assumingMemoryBound(to: CChar.self), srcSize, dstCapacity)
        guard n >= 0 else {
            throw FWError.corrupt("lz4: corrupt compressed block (\(input.count) bytes, error \(n)) or output larger than \(output.count) bytes")
        }
        return Int(n)
    }

    /// Decompresses until `targetSize` bytes of output exist (or the block ends, if sooner) and
    /// returns the number of bytes written, at most `min(targetSize, output.count)`.
    ///
    /// Bytes after the end of the compressed data in `input` are tolerated once the target is
    /// reached, which is what EROFS needs for pclusters whose compressed length is not stored.
    public func decompressPartial(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, targetSize: Int) throws -> Int {
        let (src, srcSize) = try Self.check(input)
        guard let dst = output.baseAddress, output.count > 0 else {
            throw FWError.corrupt("lz4: no room for output")
        }
        guard targetSize >= 0 else { throw FWError.corrupt("lz4: negative target size") }
        let capacity = Int32(clamping: output.count)
        let target = min(Int32(clamping: targetSize), capacity)
        let n = LZ4_decompress_safe_partial(src, UnsafeMutableRawPointer(dst).assumingMemoryBound(to: CChar.self), srcSize, target, capacity)
        guard n >= 0 else {
            throw FWError.corrupt("lz4: corrupt compressed block (\(input.count) bytes, error \(n)) while decoding \(target) bytes")
        }
        return Int(n)
    }

    private static func check(_ input: UnsafeRawBufferPointer) throws -> (UnsafePointer<CChar>, Int32) {
        guard let base = input.baseAddress, input.count > 0 else {
            throw FWError.corrupt("lz4: empty compressed block")
        }
        guard let size = Int32(exactly: input.count) else {
            throw FWError(.limitExceeded, "lz4: compressed block of \(input.count) bytes is too large")
        }
        return (base.assumingMemoryBound(to: CChar.self), size)
    }
}
