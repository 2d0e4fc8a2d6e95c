internal import CZlib
import DiskImage

/// zlib streams (RFC 1950: a 2-byte header, deflate data, an Adler-32 trailer), as squashfs's
/// "gzip" compressor stores each block. Any window size up to 32 KiB (squashfs's
/// `-Xwindow-size 8..15`) decodes, since the stream header names its own window.
///
/// Wraps zlib's one-shot `uncompress2`, which never writes past the output and verifies the
/// Adler-32 checksum.
public struct Zlib: Decompressor {
    public let name = "gzip"
    /// Whether bytes after the end of the stream are ignored (btrfs pads a compressed extent to
    /// its sector size) instead of being an error.
    public let allowsTrailingData: Bool

    public init(allowsTrailingData: Bool = false) {
        self.allowsTrailingData = allowsTrailingData
    }

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, dst) = try buffers(input, output)
        let (inputLength, outputLength) = try lengths(input, output, as: uLong.self)
        var destLen = outputLength
        var sourceLen = inputLength
        let ret = uncompress2(dst.assumingMemoryBound(to: Bytef.self), &destLen,
                              src.assumingMemoryBound(to: Bytef.self), &sourceLen)
        switch ret {
        case Z_OK:
            guard sourceLen == inputLength || allowsTrailingData else {
                throw FWError.corrupt("gzip: \(inputLength - sourceLen) bytes of garbage after the end of the compressed block")
            }
            return Int(destLen)
        case Z_BUF_ERROR where destLen == outputLength:
            throw FWError.corrupt("gzip: block decompresses to more than \(output.count) bytes")
        case Z_BUF_ERROR:
            throw FWError.corrupt("gzip: compressed block (\(input.count) bytes) is truncated")
        case Z_DATA_ERROR:
            throw FWError.corrupt("gzip: corrupt compressed block (\(input.count) bytes): bad header, data or checksum")
        case Z_MEM_ERROR:
            throw FWError(.io, "gzip: out of memory")
        default:
            throw FWError.corrupt("gzip: zlib error \(ret) on a \(input.count)-byte block")
        }
    }
}
