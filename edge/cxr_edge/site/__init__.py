"""This clinic's own operating point: calibration on its labelled images, the site file, run monitoring and the
statistics behind them."""
