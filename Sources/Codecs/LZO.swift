internal import CLZO
import DiskImage

/// LZO1X blocks (any lzo1x compressor variant, including lzo1x_999, decodes with the one
/// decompressor), as squashfs's "lzo" compressor stores each block.
///
/// Wraps liblzo2's `lzo1x_decompress_safe`, which checks every input and output bound.
public struct LZO: Decompressor {
    public let name = "lzo"

    public init() {}

    /// `lzo_init()` once per process (it only checks the library's ABI assumptions).
    private static let initialised: Bool = fwa_lzo_init() == LZO_E_OK

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        guard LZO.initialised else {
            throw FWError(.io, "lzo: lzo_init() failed (liblzo2 built for another ABI)")
        }
        let (src, dst) = try buffers(input, output)
        let (inputLength, outputLength) = try lengths(input, output, as: lzo_uint.self)
        var written = outputLength
        let ret = lzo1x_decompress_safe(src.assumingMemoryBound(to: UInt8.self), inputLength,
                                        dst.assumingMemoryBound(to: UInt8.self), &written, nil)
        switch ret {
        case LZO_E_OK:
            guard written <= outputLength else {
                throw FWError.corrupt("lzo: decoder reported \(written) bytes for a \(output.count)-byte buffer")
            }
            return Int(written)
        case LZO_E_OUTPUT_OVERRUN:
            throw FWError.corrupt("lzo: block decompresses to more than \(output.count) bytes")
        case LZO_E_INPUT_OVERRUN:
            throw FWError.corrupt("lzo: compressed block (\(input.count) bytes) is truncated")
        case LZO_E_INPUT_NOT_CONSUMED:
            throw FWError.corrupt("lzo: garbage after the end of the compressed block (\(input.count) bytes)")
        default:
            throw FWError.corrupt("lzo: corrupt compressed block (\(input.count) bytes, error \(ret))")
        }
    }
}
