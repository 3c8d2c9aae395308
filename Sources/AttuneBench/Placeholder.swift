enum AttuneBenchPlaceholder {}
