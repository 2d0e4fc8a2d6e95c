extension FAT {
    /// Converts a FAT date and time to seconds since the epoch exactly as Linux's
    /// fat_time_fat2unix does with the default time zone (UTC: the kernel's sys_tz is 0 unless
    /// userspace sets it, and `tz=UTC` is the documented meaning of no offset).
    ///
    /// Date: bits 0-4 day (0 read as 1), 5-8 month (0 read as 1; 13-15 add no days), 9-15 years
    /// since 1980. Time: bits 0-4 seconds/2, 5-10 minutes, 11-15 hours, added without range checks.
    public static func unixTime(date: UInt16, time: UInt16) -> Int64 {
        // Days before each month in a non-leap year, indexed by month 0...15 as Linux's table.
        let daysInYear: [Int64] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 0, 0, 0]
        let year = Int64(date >> 9)
        let month = max(1, Int64((date >> 5) & 0xF))
        let day = max(1, Int64(date & 0x1F)) - 1
        let year2100: Int64 = 120
        var leapDays = (year + 3) / 4
        if year > year2100 { leapDays -= 1 }
        if year & 3 == 0 && year != year2100 && month > 2 { leapDays += 1 }
        var seconds = Int64(time & 0x1F) << 1
        seconds += Int64((time >> 5) & 0x3F) * 60
        seconds += Int64(time >> 11) * 3600
        let daysDelta: Int64 = 3652   // 1970-01-01 to 1980-01-01 (leap years 1972, 1976)
        seconds += (year * 365 + leapDays + daysInYear[Int(month)] + day + daysDelta) * 86400
        return seconds
    }
}
