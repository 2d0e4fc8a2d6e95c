internal import CZstd
import DiskImage

/// Zstandard frames (RFC 8878), as squashfs's "zstd" compressor stores each block.
///
/// Wraps libzstd's one-shot `ZSTD_decompress`, which never writes past the output (a frame that
/// would is an error) and checks the frame's content size and checksum when present.
public struct Zstd: Decompressor {
    public let name = "zstd"

    public init() {}

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, dst) = try buffers(input, output)
        let ret = ZSTD_decompress(dst, output.count, src, input.count)
        if ZSTD_isError(ret) != 0 {
            let reason = ZSTD_getErrorName(ret).map { String(cString: $0) } ?? "unknown error"
            throw FWError.corrupt("zstd: corrupt compressed block (\(input.count) bytes) or output over \(output.count) bytes: \(reason)")
        }
        guard ret <= output.count else {
            throw FWError.corrupt("zstd: decoder reported \(ret) bytes for a \(output.count)-byte buffer")
        }
        return ret
    }
}
